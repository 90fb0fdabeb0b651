/**
 * The last `capacity` socket cookies added, for membership tests: a ring of the cookies in the order they came
 * and an open-addressing table over it (linear probing, deletion by backward shift), both typed arrays. Adding
 * one to a full ring forgets the oldest. Per cookie it costs a few array reads, where a Set of 65,536 numbers
 * cost a hash-table walk and, now and then, a rehash of the whole table.
 */
export class RecentCookies {
  /** the cookies in the order they were added (a ring) */
  readonly #ring: Float64Array;
  /** open-addressing slots: ring index + 1, 0 when empty */
  readonly #slots: Int32Array;
  readonly #mask: number;
  #next = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`bad capacity ${capacity}`);
    this.#ring = new Float64Array(capacity);
    // a power of two at least four times the capacity: probe runs stay short
    let slots = 4;
    while (slots < 4 * capacity) slots *= 2;
    this.#slots = new Int32Array(slots);
    this.#mask = slots - 1;
  }

  get size(): number {
    return this.#size;
  }

  has(cookie: number): boolean {
    return this.#find(cookie) >= 0;
  }

  /** Remembers `cookie` (nothing when it already is), forgetting the oldest when full. */
  add(cookie: number): void {
    if (this.#find(cookie) >= 0) return;
    const at = this.#next;
    if (this.#size === this.capacity) this.#remove(this.#find(this.#ring[at]!));
    else this.#size++;
    this.#ring[at] = cookie;
    let slot = this.#home(cookie);
    while (this.#slots[slot] !== 0) slot = (slot + 1) & this.#mask;
    this.#slots[slot] = at + 1;
    this.#next = (at + 1) % this.capacity;
  }

  /** The slot holding `cookie`, or -1. */
  #find(cookie: number): number {
    const slots = this.#slots;
    for (let slot = this.#home(cookie); ; slot = (slot + 1) & this.#mask) {
      const entry = slots[slot]!;
      if (entry === 0) return -1;
      if (this.#ring[entry - 1] === cookie) return slot;
    }
  }

  /** Empties `slot`, moving later entries of its probe run back so that every one stays reachable. */
  #remove(slot: number): void {
    const slots = this.#slots;
    const mask = this.#mask;
    let hole = slot;
    for (let j = (hole + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const home = this.#home(this.#ring[slots[j]! - 1]!);
      // the entry at j may fill the hole when its home is not in the cyclic range (hole, j]
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        slots[hole] = slots[j]!;
        hole = j;
      }
    }
    slots[hole] = 0;
  }

  /** A cookie's first slot: its two 32-bit halves mixed. */
  #home(cookie: number): number {
    const low = cookie >>> 0;
    const high = (cookie / 0x1_0000_0000) >>> 0;
    let h = Math.imul(low ^ Math.imul(high, 0x9e3779b1), 0x85ebca6b);
    h ^= h >>> 15;
    return h & this.#mask;
  }
}
