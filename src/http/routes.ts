/** Where the HTTP API lives: shared by the server app and its client, which must agree on it. */
export const API_PREFIX = "/api/v1";
