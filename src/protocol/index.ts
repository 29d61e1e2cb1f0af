// The WAL push protocol v1: decoded types, byte codecs, the control file.
export * from './types.js';
export * from './layout.js';
export * from './errors.js';
export * from './node-id.js';
export * from './messages.js';
export * from './control-file.js';
