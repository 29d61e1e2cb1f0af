// Loads build/walkeeper.wasm once and hands out typed access to its exports
// and memory. Views over wasm memory go stale when memory grows, so callers
// ask for a fresh view (`bytes`) after every call that may allocate.
import { instantiateSync } from '@assemblyscript/loader';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface WasmExports {
  memory: WebAssembly.Memory;
  alloc(size: number): number;
  free(ptr: number): void;
  [name: string]: unknown;
}

let loaded: WasmExports | undefined;

/** The project root: the nearest ancestor directory holding asconfig.json. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'asconfig.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the walkeeper project root (asconfig.json)');
    dir = up;
  }
}

export function wasmPath(): string {
  return join(projectRoot(), 'build', 'walkeeper.wasm');
}

export function wasm<T extends WasmExports = WasmExports>(): T {
  if (!loaded) {
    const path = wasmPath();
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch {
      throw new Error(`cannot read ${path}: build it with "npm run asbuild"`);
    }
    loaded = instantiateSync<Record<string, unknown>>(bytes, {}).exports as unknown as WasmExports;
  }
  return loaded as T;
}

/** A fresh view of `len` bytes of wasm memory at `ptr`. */
export function bytes(ptr: number, len: number): Uint8Array {
  return new Uint8Array(wasm().memory.buffer, ptr, len);
}

/**
 * A reusable unmanaged buffer in wasm memory. `view()` is re-created when
 * memory has grown since the last call.
 */
export class WasmBuffer {
  ptr: number;
  capacity: number;
  private cached: Uint8Array | undefined;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.ptr = wasm().alloc(capacity);
  }

  /** Make room for at least `capacity` bytes; contents are not kept. */
  reserve(capacity: number): void {
    if (capacity <= this.capacity) return;
    const w = wasm();
    w.free(this.ptr);
    this.capacity = Math.max(capacity, this.capacity * 2);
    this.ptr = w.alloc(this.capacity);
    this.cached = undefined;
  }

  view(): Uint8Array {
    const buf = wasm().memory.buffer;
    if (!this.cached || this.cached.buffer !== buf) this.cached = new Uint8Array(buf, this.ptr, this.capacity);
    return this.cached;
  }

  dispose(): void {
    if (this.ptr) wasm().free(this.ptr);
    this.ptr = 0;
    this.capacity = 0;
    this.cached = undefined;
  }
}
