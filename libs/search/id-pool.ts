/**
 * Free file ids, lowest first (a binary min-heap), so that live files gather at low ids and the top of the
 * id space empties out and can be given back (`trimTo`).
 */
export class IdPool {
  private heap: number[] = [];

  get size(): number {
    return this.heap.length;
  }

  push(id: number): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= id) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = id;
  }

  peek(): number | undefined {
    return this.heap[0];
  }

  pop(): number | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= n) break;
        const right = left + 1;
        const child = right < n && heap[right]! < heap[left]! ? right : left;
        if (heap[child]! >= last) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }

  /** Forgets every id >= `limit` (the id space shrank to `limit`); linear (a bottom-up heapify, no sort). */
  trimTo(limit: number): void {
    const heap = this.heap.filter((id) => id < limit);
    for (let start = (heap.length >> 1) - 1; start >= 0; start--) {
      const value = heap[start]!;
      let i = start;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && heap[right]! < heap[left]! ? right : left;
        if (heap[child]! >= value) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = value;
    }
    this.heap = heap;
  }
}
