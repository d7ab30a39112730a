/**
 * The app socket's part of the OpenAPI document (routes/openapi.ts). OpenAPI describes the
 * upgrade and its refusals; the messages on the socket are CONTRACT's and docs/native-clients.md's.
 */

const errorResponse = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

/** `GET /api/v1/ws`: the JSON stream's events over one WebSocket. */
export function socketPaths(): Record<string, unknown> {
  return {
    "/api/v1/ws": {
      get: {
        summary: "The app socket: this user's OrderEvents over one WebSocket",
        description: "Upgrade to a WebSocket, then send within 10 s " +
          '`{"op":"hello","token"?,"last_event_id"?}` (the token unless this site\'s page ' +
          "authenticated the upgrade with its cookie). The server answers " +
          '`{"op":"ready","last_event_id","heartbeat_ms"}`, then `{"op":"event","event"}` ' +
          "for each event (replay, then live), `reset`, `status` and `ping`; " +
          '`{"op":"auth","token"}` refreshes the credentials. The resume, history and reset ' +
          "rules and the caps are GET /api/v1/stream's. Close codes: 4400 bad message, 4401 " +
          "credentials, 4403 session revoked, 4408 too slow, 4429 too many connections, " +
          "1012 restarting.",
        security: [],
        responses: {
          "101": { description: "Switching to the WebSocket protocol" },
          "400": errorResponse("Not a WebSocket upgrade"),
          "403": errorResponse("A session cookie from another site's page"),
          "501": errorResponse("Served only with HTTP_SERVER=deno"),
        },
      },
    },
  };
}
