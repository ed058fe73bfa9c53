/* lp_proto: constants of the llm-proxy wire protocol (see PROTOCOL.md). Every message is
 * [identity] then two frames: a header ("LPX3", the command byte, the request id's length
 * (0 or 16) and the id, then the meta: a MessagePack map, or nothing) and the body. The
 * signature carries the major version; a breaking change bumps it. */
#ifndef LP_PROTO_H
#define LP_PROTO_H

/* Protocol id and major version, the header frame's first bytes. */
#define LP_PROTO_SIGNATURE     "LPX3"
#define LP_PROTO_SIGNATURE_LEN 4
/* Request ids are 16 random bytes (a version-4 UUID). */
#define LP_REQ_ID_LEN 16
/* Metas are small routing headers; anything bigger is malformed. */
#define LP_META_MAX 65536

/* Every link sends HEARTBEAT this often when otherwise idle; a peer silent for LIVENESS
 * intervals is dead (about a second: a killed worker's jobs move on quickly). */
#define LP_HEARTBEAT_MS       250
#define LP_HEARTBEAT_LIVENESS 4

/* Default endpoints when nothing else is configured (one host, loopback). */
#define LP_DEFAULT_ROUTER_FRONTEND "tcp://127.0.0.1:5555"
#define LP_DEFAULT_ROUTER_BACKEND  "tcp://127.0.0.1:5556"
#define LP_DEFAULT_LOGGER          "tcp://127.0.0.1:5557"

typedef enum {
    LP_CMD_READY = 1,      /* worker -> router: joined, meta {credits} */
    LP_CMD_HEARTBEAT = 2,  /* both ways on every link: liveness, meta {credits | workers} */
    LP_CMD_DISCONNECT = 3, /* worker -> router: leaving, take no more jobs */
    LP_CMD_REQUEST = 4,    /* gateway -> router -> worker: a job, body = client JSON */
    LP_CMD_HEAD = 5,       /* worker -> gateway: stream begins, meta {status, headers} */
    LP_CMD_CHUNK = 6,      /* worker -> gateway: bytes for the client (already framed) */
    LP_CMD_END = 7,        /* worker -> gateway: job done, meta {status, usage, ...}, body */
    LP_CMD_ERROR = 8,      /* any -> gateway: job failed, meta {status, retryable}, body */
    LP_CMD_CANCEL = 9,     /* gateway -> router -> worker: client gone, stop the call */
    LP_CMD_RECORD = 10,    /* gateway -> logger: one usage record, body = JSON */
    LP_CMD_ACK = 11,       /* logger -> gateway: record(s) durably accepted */
    LP_CMD_CREDIT = 12,    /* gateway -> router -> worker: meta {bytes} of a stream consumed */
    LP_CMD_QUERY = 13,     /* gateway -> logger: a read, meta {kind, filters}; END/ERROR back */
} lp_cmd_t;

#define LP_CMD_MAX LP_CMD_QUERY

#endif
