// Errors that travel to a client as an ErrorResponse: severity, SQLSTATE,
// message, and optionally detail and hint.

/** The SQLSTATE codes this server uses (PostgreSQL's errcodes.txt names). */
export const SqlState = {
  SUCCESSFUL_COMPLETION: '00000',
  PROTOCOL_VIOLATION: '08P01',
  CONNECTION_EXCEPTION: '08000',
  FEATURE_NOT_SUPPORTED: '0A000',
  INVALID_PARAMETER_VALUE: '22023',
  INVALID_AUTHORIZATION_SPECIFICATION: '28000',
  INVALID_PASSWORD: '28P01',
  SYNTAX_ERROR: '42601',
  INVALID_NAME: '42602',
  UNDEFINED_OBJECT: '42704',
  OBJECT_NOT_IN_PREREQUISITE_STATE: '55000',
  DISK_FULL: '53100',
  INSUFFICIENT_RESOURCES: '53000',
  TOO_MANY_CONNECTIONS: '53300',
  PROGRAM_LIMIT_EXCEEDED: '54000',
  ADMIN_SHUTDOWN: '57P01',
  IO_ERROR: '58030',
  UNDEFINED_FILE: '58P01',
  INTERNAL_ERROR: 'XX000',
  DATA_CORRUPTED: 'XX001',
} as const;

export type Severity = 'ERROR' | 'FATAL' | 'PANIC' | 'WARNING' | 'NOTICE' | 'INFO' | 'LOG' | 'DEBUG';

export interface PgErrorFields {
  severity?: Severity;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
}

/**
 * An error to report to the client. `severity` FATAL means the connection
 * is closed after the ErrorResponse; ERROR means it goes on (ReadyForQuery).
 */
export class PgError extends Error {
  readonly severity: Severity;
  readonly code: string;
  readonly detail: string | undefined;
  readonly hint: string | undefined;

  constructor(fields: PgErrorFields) {
    super(fields.message);
    this.name = 'PgError';
    this.severity = fields.severity ?? 'ERROR';
    this.code = fields.code;
    this.detail = fields.detail;
    this.hint = fields.hint;
  }

  get fatal(): boolean {
    return this.severity === 'FATAL' || this.severity === 'PANIC';
  }

  /** The same error with another severity. */
  withSeverity(severity: Severity): PgError {
    return new PgError({ severity, code: this.code, message: this.message, detail: this.detail, hint: this.hint });
  }

  static protocol(message: string, detail?: string): PgError {
    return new PgError({ severity: 'FATAL', code: SqlState.PROTOCOL_VIOLATION, message, detail });
  }
}
