// Unmanaged buffers the host fills directly (file reads, socket bytes) and
// hands back by pointer. The host must re-create its views after any call
// that may allocate, because memory growth detaches the old ArrayBuffer.

export function alloc(size: usize): usize {
  return heap.alloc(size);
}

export function free(ptr: usize): void {
  heap.free(ptr);
}
