// The module's exports, nothing else.
export { alloc, free } from "./memory";
export { crc32cUpdate } from "./crc32c";
export { frameScan } from "./frames";
export { xlogScannerNew, xlogScannerFree, xlogScannerSetOutput, xlogScannerFeed, xlogScannerStatus, xlogScannerEnd, xlogScannerLastRecord, xlogScannerPosition, xlogScannerRecordCount, xlogScannerOutputCount, xlogScannerSysid, xlogScannerMagic, xlogScannerTimeline } from "./xlog";
