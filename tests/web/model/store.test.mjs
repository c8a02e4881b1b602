// The record store: every change is a reversible diff (tldraw's store model).
import assert from "node:assert/strict";
import { test } from "node:test";
import { History } from "../../../web/model/history.js";
import { emptyDiff, invertDiff, squashInto, Store } from "../../../web/model/store.js";

const record = (id, value) => ({ typeName: "thing", id, value });

test("put, update and remove report added, updated and removed records", () => {
  const store = new Store();
  const diffs = [];
  store.listen((diff) => diffs.push(diff));
  store.put([record("a", 1)]);
  store.update("a", { value: 2 });
  store.remove(["a"]);
  assert.deepEqual(diffs[0].added, { a: record("a", 1) });
  assert.deepEqual(diffs[1].updated, { a: [record("a", 1), record("a", 2)] });
  assert.deepEqual(diffs[2].removed, { a: record("a", 2) });
});

test("a transaction reaches listeners as one squashed diff", () => {
  const store = new Store();
  store.put([record("kept", 0)]);
  const diffs = [];
  store.listen((diff) => diffs.push(diff));
  store.transact(() => {
    store.put([record("temporary", 1)]);
    store.update("kept", { value: 1 });
    store.update("kept", { value: 2 });
    store.remove(["temporary"]);
  });
  assert.equal(diffs.length, 1);
  assert.deepEqual(diffs[0].added, {});
  assert.deepEqual(diffs[0].removed, {});
  assert.deepEqual(diffs[0].updated, { kept: [record("kept", 0), record("kept", 2)] });
});

test("removing then adding the same id squashes into an update", () => {
  const base = emptyDiff();
  base.removed.x = record("x", 1);
  const next = emptyDiff();
  next.added.x = record("x", 2);
  assert.deepEqual(squashInto(base, next).updated, { x: [record("x", 1), record("x", 2)] });
});

test("applying a diff and then its inverse restores the store exactly", () => {
  const store = new Store();
  store.put([record("a", 1), record("b", 1)]);
  let captured;
  const stop = store.listen((diff) => { captured = diff; });
  store.transact(() => {
    store.remove(["a"]);
    store.update("b", { value: 5 });
    store.put([record("c", 3)]);
  });
  stop();
  store.applyDiff(invertDiff(captured));
  assert.deepEqual([...store.ofType("thing")].sort((l, r) => l.id.localeCompare(r.id)), [record("a", 1), record("b", 1)]);
});

test("history groups changes into one step and redoes them exactly", () => {
  const store = new Store();
  const history = new History(store);
  store.put([record("a", 0)]);
  history.group(() => {
    store.update("a", { value: 1 });
    store.update("a", { value: 2 });
    store.put([record("b", 9)]);
  });
  history.undo();
  assert.equal(store.get("a").value, 0);
  assert.equal(store.has("b"), false);
  history.redo();
  assert.equal(store.get("a").value, 2);
  assert.equal(store.get("b").value, 9);
  history.undo();
  history.undo();
  assert.equal(store.has("a"), false);
  assert.equal(history.canUndo, false);
});

test("a new change after undo clears the redo stack", () => {
  const store = new Store();
  const history = new History(store);
  store.put([record("a", 0)]);
  store.update("a", { value: 1 });
  history.undo();
  assert.equal(history.canRedo, true);
  store.update("a", { value: 7 });
  assert.equal(history.canRedo, false);
});
