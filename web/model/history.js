/**
 * Undo/redo over store diffs. Each user change is one step unless it happens inside a
 * `group` (a paste, a multi-node move, a widget drag), whose changes squash into one step.
 */
import { emptyDiff, invertDiff, isEmptyDiff, squashInto } from "./store.js";

export class History {
  #store;
  #undoStack = [];
  #redoStack = [];
  #open = null;
  #depth = 0;
  #limit;

  /** @param {import("./store.js").Store} store */
  constructor(store, limit = 200) {
    this.#store = store;
    this.#limit = limit;
    store.listen((diff, source) => this.#record(diff, source));
  }

  get canUndo() {
    return this.#undoStack.length > 0 || (this.#open !== null && !isEmptyDiff(this.#open));
  }

  get canRedo() {
    return this.#redoStack.length > 0;
  }

  /** Open a group; every change until the matching `end` becomes one undo step. */
  begin() {
    if (this.#depth++ === 0) this.#open = emptyDiff();
  }

  end() {
    if (this.#depth === 0) return;
    if (--this.#depth > 0) return;
    const diff = this.#open;
    this.#open = null;
    if (!isEmptyDiff(diff)) this.#push(diff);
  }

  /** Run `fn` as one undo step (and one store transaction). */
  group(fn) {
    this.begin();
    try {
      return this.#store.transact(fn);
    } finally {
      this.end();
    }
  }

  undo() {
    this.#closeOpenGroup();
    const diff = this.#undoStack.pop();
    if (!diff) return false;
    this.#store.applyDiff(invertDiff(diff), "history");
    this.#redoStack.push(diff);
    return true;
  }

  redo() {
    const diff = this.#redoStack.pop();
    if (!diff) return false;
    this.#store.applyDiff(diff, "history");
    this.#undoStack.push(diff);
    return true;
  }

  clear() {
    this.#undoStack = [];
    this.#redoStack = [];
  }

  #closeOpenGroup() {
    while (this.#depth > 0) this.end();
  }

  #record(diff, source) {
    if (source !== "user") return;
    if (this.#open) squashInto(this.#open, diff);
    else this.#push(diff);
  }

  #push(diff) {
    this.#undoStack.push(diff);
    if (this.#undoStack.length > this.#limit) this.#undoStack.shift();
    this.#redoStack = [];
  }
}
