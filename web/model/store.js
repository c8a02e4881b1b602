/**
 * The graph document as a flat map of typed records, changed only through diffs.
 *
 * Follows tldraw's `packages/store` idea: every record is an immutable plain object
 * `{typeName, id, ...}`; every change is a reversible diff
 * `{added: {id: record}, updated: {id: [before, after]}, removed: {id: record}}`, so undo is
 * applying the inverted diff and redo is applying the diff again, exactly.
 */

/** @returns {{added: object, updated: object, removed: object}} */
export function emptyDiff() {
  return { added: {}, updated: {}, removed: {} };
}

export function isEmptyDiff(diff) {
  return !Object.keys(diff.added).length && !Object.keys(diff.updated).length && !Object.keys(diff.removed).length;
}

/** The diff that undoes `diff`. */
export function invertDiff(diff) {
  const inverse = emptyDiff();
  for (const [id, record] of Object.entries(diff.added)) inverse.removed[id] = record;
  for (const [id, record] of Object.entries(diff.removed)) inverse.added[id] = record;
  for (const [id, [before, after]] of Object.entries(diff.updated)) inverse.updated[id] = [after, before];
  return inverse;
}

/**
 * Fold `next` into `base` (mutating `base`) so that applying the result equals applying both in order.
 * An add followed by a remove cancels out; a remove followed by an add becomes an update.
 */
export function squashInto(base, next) {
  for (const [id, record] of Object.entries(next.added)) {
    if (id in base.removed) {
      const before = base.removed[id];
      delete base.removed[id];
      base.updated[id] = [before, record];
    } else {
      base.added[id] = record;
    }
  }
  for (const [id, [before, after]] of Object.entries(next.updated)) {
    if (id in base.added) base.added[id] = after;
    else if (id in base.updated) base.updated[id] = [base.updated[id][0], after];
    else base.updated[id] = [before, after];
  }
  for (const [id, record] of Object.entries(next.removed)) {
    if (id in base.added) delete base.added[id];
    else if (id in base.updated) {
      base.removed[id] = base.updated[id][0];
      delete base.updated[id];
    } else base.removed[id] = record;
  }
  for (const [id, [before, after]] of Object.entries(base.updated)) {
    if (before === after) delete base.updated[id];
  }
  return base;
}

/** A map of records with change listeners; changes made inside `transact` are reported as one diff. */
export class Store {
  #records = new Map();
  #listeners = new Set();
  #pending = null;
  #source = "user";

  get(id) {
    return this.#records.get(id);
  }

  has(id) {
    return this.#records.has(id);
  }

  /** Every record of one `typeName`, in insertion order. */
  *ofType(typeName) {
    for (const record of this.#records.values()) if (record.typeName === typeName) yield record;
  }

  get size() {
    return this.#records.size;
  }

  /** Add or replace records (replacing is an update). */
  put(records) {
    const diff = emptyDiff();
    for (const record of records) {
      const before = this.#records.get(record.id);
      this.#records.set(record.id, record);
      if (before === undefined) diff.added[record.id] = record;
      else if (before !== record) diff.updated[record.id] = [before, record];
    }
    this.#emit(diff);
  }

  /** Replace one record by `patch(record)`'s result, merged as a shallow update. */
  update(id, patch) {
    const before = this.#records.get(id);
    if (!before) throw new Error(`no record ${id}`);
    this.put([{ ...before, ...(typeof patch === "function" ? patch(before) : patch) }]);
  }

  remove(ids) {
    const diff = emptyDiff();
    for (const id of ids) {
      const record = this.#records.get(id);
      if (record === undefined) continue;
      this.#records.delete(id);
      diff.removed[id] = record;
    }
    this.#emit(diff);
  }

  /** Apply a diff as is (undo, redo, loading); `source` tells listeners who changed the store. */
  applyDiff(diff, source = "user") {
    const previous = this.#source;
    this.#source = source;
    try {
      this.transact(() => {
        this.remove(Object.keys(diff.removed));
        this.put([...Object.values(diff.added), ...Object.values(diff.updated).map(([, after]) => after)]);
      });
    } finally {
      this.#source = previous;
    }
  }

  /** Run `fn`; every change it makes reaches listeners as one diff. Nested calls join the outer one. */
  transact(fn) {
    if (this.#pending) return fn();
    this.#pending = emptyDiff();
    let diff;
    try {
      return fn();
    } finally {
      diff = this.#pending;
      this.#pending = null;
      if (!isEmptyDiff(diff)) this.#notify(diff);
    }
  }

  /** `listener(diff, source)`; returns the unsubscribe function. */
  listen(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(diff) {
    if (isEmptyDiff(diff)) return;
    if (this.#pending) squashInto(this.#pending, diff);
    else this.#notify(diff);
  }

  #notify(diff) {
    for (const listener of [...this.#listeners]) listener(diff, this.#source);
  }
}
