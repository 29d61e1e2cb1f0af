// Reload without a restart (SIGHUP, POST /v1/reload): each piece of
// material re-reads its files on its own; one that cannot be used is
// refused with a log line and stays as it was, the others go ahead. New
// connections get the new material; open ones keep what they negotiated.
import type { JwtVerifier } from '../auth/jwt.js';
import type { ReloadItem, ReloadReport } from '../http/app.js';
import type { Logger } from '../log.js';
import type { CertificateSummary, TlsMaterial } from '../tls/material.js';

type Details = Omit<ReloadItem, 'what' | 'path' | 'error'>;

export interface Reloadable {
  what: ReloadItem['what'];
  path: string;
  /** Re-read and put in force; throws (one line) when the new files cannot be used. */
  reload(): Details;
}

function certificateDetails(s: CertificateSummary): Details {
  return { subject: s.subject, fingerprint256: s.fingerprint256, valid_to: s.validTo };
}

export function reloadableKeys(verifier: JwtVerifier): Reloadable | null {
  const path = verifier.path;
  if (path === null) return null;
  return { what: 'auth_public_keys', path, reload: () => ({ keys: verifier.reload() }) };
}

/** `applied` runs after a successful re-read (e.g. to hand the new pair to the HTTPS server). */
export function reloadableTls(what: 'tls' | 'http_tls', material: TlsMaterial, applied: () => void): Reloadable {
  return {
    what,
    path: material.certPath,
    reload: () => {
      const summary = material.reload();
      applied();
      return certificateDetails(summary);
    },
  };
}

export function reloadAll(items: Reloadable[], log: Logger): ReloadReport {
  const report: ReloadReport = { reloaded: [], refused: [] };
  for (const item of items) {
    try {
      const details = item.reload();
      report.reloaded.push({ what: item.what, path: item.path, ...details });
      log.info({ what: item.what, path: item.path, ...details }, 'reloaded');
    } catch (err) {
      const error = (err as Error).message;
      report.refused.push({ what: item.what, path: item.path, error });
      log.error({ what: item.what, path: item.path, err: error }, 'reload refused: the material in force stays');
    }
  }
  return report;
}
