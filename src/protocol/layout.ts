// Sizes and constants of the WAL push protocol v1 (docs/protocol.md §4, control file §9). Offsets of
// each field live next to the codec that reads them (messages.ts).

export const PROTOCOL_VERSION = 1;

export const NODE_ID_SIZE = 24;
export const SERVER_INFO_SIZE = 88;
export const SAFEKEEPER_INFO_SIZE = 128;
export const REQUEST_VOTE_SIZE = 40;
export const REQUEST_HEADER_SIZE = 56;
export const RESPONSE_SIZE = 40;

/** Largest WAL payload of one SafeKeeperRequest: 16 × 8 KiB. */
export const MAX_WAL_PER_REQUEST = 128 * 1024;

export const UUID_SIZE = 16;
export const TENANT_ID_SIZE = 16;
export const TIMELINE_ID_SIZE = 16;

export const SAFEKEEPER_MAGIC = 0xcafeceef;

/**
 * Control file formats: 1 = bare 128 bytes; 2 = 128 bytes + u32 CRC-32C;
 * 3 = 128 bytes + backup_lsn u64 + u32 CRC-32C of the 136 before it.
 * The wire SafeKeeperInfo keeps format_version 2 whatever the file holds.
 */
export const CONTROL_FORMAT_V1 = 1;
export const CONTROL_FORMAT_V2 = 2;
export const CONTROL_FORMAT_V3 = 3;
export const CONTROL_FILE_V1_SIZE = SAFEKEEPER_INFO_SIZE;
export const CONTROL_FILE_V2_SIZE = SAFEKEEPER_INFO_SIZE + 4;
export const CONTROL_FILE_V3_SIZE = SAFEKEEPER_INFO_SIZE + 8 + 4;

export const U64_MAX = 0xffff_ffff_ffff_ffffn;
