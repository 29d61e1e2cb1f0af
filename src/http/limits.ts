// Limits on the HTTP admin listener, so that a slow or oversized request
// cannot tie up the daemon. Fastify's own options, each for its own case:
//   bodyLimit       largest request body (413 beyond it); no route takes more
//                   than a small JSON object
//   requestTimeout  the whole request (headers and body) must arrive within
//                   it: a client dribbling bytes is cut off (Node answers 408;
//                   it checks every 30 s, connectionsCheckingInterval)
//   connectionTimeout  a socket idle this long is closed
//   handlerTimeout  a route must have answered within it (503, and
//                   request.signal aborts); routes may set their own
export const HTTP_LIMITS = {
  bodyLimit: 64 * 1024,
  requestTimeout: 30_000,
  connectionTimeout: 60_000,
  handlerTimeout: 30_000,
} as const;

/** DELETE waits for the timeline's connections to close and its files to go: a slow disk gets longer. */
export const DELETE_HANDLER_TIMEOUT = 120_000;
