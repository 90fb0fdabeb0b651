/**
 * A table of strings looked up by a range of another string: a name in a line is found without cutting it
 * out of the line first (a fresh string would have to be made and hashed for every lookup). Open addressing
 * over a power-of-two array; it takes no more than its capacity, so hostile input cannot grow it.
 */
export class RangeTable<V> {
  private readonly keys: (string | undefined)[];
  private readonly hashes: Int32Array;
  private readonly values: (V | undefined)[];
  private readonly mask: number;
  private count = 0;

  constructor(readonly capacity: number) {
    let slots = 16;
    while (slots < capacity * 2) slots *= 2;
    this.keys = new Array(slots).fill(undefined);
    this.hashes = new Int32Array(slots);
    this.values = new Array(slots).fill(undefined);
    this.mask = slots - 1;
  }

  get size(): number {
    return this.count;
  }

  /** The value stored under s[a..b), or undefined. */
  get(s: string, a: number, b: number): V | undefined {
    const h = rangeHash(s, a, b);
    const len = b - a;
    let i = h & this.mask;
    for (;;) {
      const key = this.keys[i];
      if (key === undefined) return undefined;
      if (this.hashes[i] === h && key.length === len && s.startsWith(key, a)) return this.values[i];
      i = (i + 1) & this.mask;
    }
  }

  /** The stored string equal to s[a..b) (one object for every occurrence), or undefined. */
  key(s: string, a: number, b: number): string | undefined {
    const h = rangeHash(s, a, b);
    const len = b - a;
    let i = h & this.mask;
    for (;;) {
      const key = this.keys[i];
      if (key === undefined) return undefined;
      if (this.hashes[i] === h && key.length === len && s.startsWith(key, a)) return key;
      i = (i + 1) & this.mask;
    }
  }

  /** Stores a value; false (and nothing stored) once the table holds its capacity. */
  set(key: string, value: V): boolean {
    const h = rangeHash(key, 0, key.length);
    let i = h & this.mask;
    for (;;) {
      const k = this.keys[i];
      if (k === undefined) break;
      if (this.hashes[i] === h && k === key) {
        this.values[i] = value;
        return true;
      }
      i = (i + 1) & this.mask;
    }
    if (this.count >= this.capacity) return false;
    this.keys[i] = key;
    this.hashes[i] = h;
    this.values[i] = value;
    this.count++;
    return true;
  }
}

/** FNV-1a over the UTF-16 code units of s[a..b). */
function rangeHash(s: string, a: number, b: number): number {
  let h = 0x811c9dc5 | 0;
  for (let i = a; i < b; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
}
