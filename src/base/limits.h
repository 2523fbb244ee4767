/*
 * limits.h — every bound dojo enforces, in one place, each with its unit in
 * its name. Each is enforced where the data enters and answered with an error
 * that names the bound.
 * Thread: constants, any.
 */
#ifndef DOJO_BASE_LIMITS_H
#define DOJO_BASE_LIMITS_H

/* HTTP (net/) */
#define LIMIT_HTTP_BODY_BYTES_MAX (8u * 1024 * 1024) /* default; --max-body-bytes */
#define LIMIT_HTTP_HEADER_BYTES_MAX (32u * 1024)     /* request line + all headers */
#define LIMIT_HTTP_HEADER_COUNT_MAX 100
#define LIMIT_HTTP_URL_BYTES_MAX (8u * 1024)
#define LIMIT_HTTP_HEADER_TIMEOUT_MS 10000 /* from first byte to end of headers */
#define LIMIT_HTTP_BODY_TIMEOUT_MS 30000   /* from end of headers to end of body */
#define LIMIT_HTTP_IDLE_TIMEOUT_MS 60000   /* keep-alive connection with no request */
#define LIMIT_HTTP_CONNECTIONS_MAX 4096
#define LIMIT_HTTP_PIPELINE_REQUESTS_MAX 16 /* parsed but unanswered, per connection */
#define LIMIT_HTTP_SHUTDOWN_GRACE_MS 10000  /* in-flight requests may finish this long */
/* Bytes of responses queued for writing on one connection (written with
 * uv_write, not yet all taken by the kernel): above this, no more requests are
 * read or parsed on it until the client reads (back-pressure). It may be
 * overshot by the responses to requests already parsed (at most
 * LIMIT_HTTP_PIPELINE_REQUESTS_MAX of them). */
#define LIMIT_HTTP_WRITE_QUEUE_BYTES_MAX (4u * 1024 * 1024)
#define LIMIT_HTTP_WRITE_TIMEOUT_MS 30000 /* pending writes without progress; then close */
/* Responses queued on all connections together: above it, a connection that
 * still holds some of its own is not read until it has taken them. */
#define LIMIT_HTTP_WRITE_QUEUE_TOTAL_BYTES_MAX (64u * 1024 * 1024)
/* Request bodies held by the process at once (being received, or waiting
 * for their answer): a body that would pass it is answered 503. */
#define LIMIT_HTTP_BODIES_TOTAL_BYTES_MAX (64u * 1024 * 1024)

/* WebSocket (net/ws.c, proto/sync) */
#define LIMIT_WS_MESSAGE_BYTES_MAX (16u * 1024 * 1024)
#define LIMIT_WS_FRAME_BYTES_MAX (16u * 1024 * 1024)
/* Unread bytes one socket may hold; then it is disconnected. A session whose
 * socket holds anything unread gets no new Transition until it drains, and
 * then one that brings it up to date: what piles up for a client that does
 * not read is one push and the small replies it asks for, not every change. */
#define LIMIT_WS_SEND_BUFFER_BYTES_MAX (16u * 1024 * 1024)
/* The encoded result of one subscribed query: a bigger one is pushed as the
 * query's error (read fewer rows, or page). */
#define LIMIT_WS_RESULT_BYTES_MAX (15u * 1024 * 1024)
/* Unread bytes of all sockets together (a query value pushed to many
 * sockets is held and counted once): above it, each socket holding more than
 * LIMIT_WS_SEND_BUFFER_FAIR_BYTES is disconnected when it next sends or at
 * the next sync tick, so ten thousand slow readers cannot take 64 MiB each. */
#define LIMIT_WS_SEND_BUFFER_TOTAL_BYTES_MAX (32u * 1024 * 1024)
#define LIMIT_WS_SEND_BUFFER_FAIR_BYTES (1u * 1024 * 1024)
#define LIMIT_WS_SESSIONS_MAX 10000
#define LIMIT_WS_SUBSCRIPTIONS_PER_SESSION_MAX 1000
#define LIMIT_WS_PENDING_MUTATIONS_PER_SESSION_MAX 1000
/* Client messages one session holds before running them (waiting behind an
 * Authenticate, or mutations queued behind the one in flight), by their
 * size on the wire. */
#define LIMIT_WS_SESSION_HELD_BYTES_MAX (64u * 1024 * 1024)
/* The same, all sessions together: above it, a session that holds some is
 * not read until what is held drops below (back-pressure, not an error). */
#define LIMIT_WS_HELD_BYTES_TOTAL_MAX (64u * 1024 * 1024)
#define LIMIT_WS_PING_INTERVAL_MS 15000
#define LIMIT_WS_CLIENT_SILENCE_MS 120000
/* A reconnecting client's maxObservedTimestamp moves the commit clock past
 * it (the database may have been restored from an older backup) only when
 * it is at most this far ahead of the wall clock: anything further did not
 * come from a dojo clock, and would let any client push every later
 * timestamp towards the end of the 64-bit range. */
#define LIMIT_WS_OBSERVED_TS_AHEAD_NS (3600ull * 1000 * 1000 * 1000)

/* Values and documents (engine/validate.c, proto/wire.c) */
#define LIMIT_DOC_BYTES_MAX (1u * 1024 * 1024)
#define LIMIT_ARGS_BYTES_MAX (16u * 1024 * 1024)
#define LIMIT_VALUE_DEPTH_MAX 64
#define LIMIT_OBJECT_FIELDS_MAX 1024
#define LIMIT_ARRAY_ITEMS_MAX 8192
#define LIMIT_FIELD_NAME_BYTES_MAX 1024
#define LIMIT_FUNCTION_PATH_BYTES_MAX 256
#define LIMIT_LOG_LINE_BYTES_MAX 4096

/* Engine (engine/) */
#define LIMIT_PAGE_ITEMS_MAX 1000
#define LIMIT_QUERY_BATCH_MAX 256 /* queries in one /api/query_batch */
/* /api/query_at_ts waits at most this long for the commits up to its
 * answer's snapshot to be processed, then says it cannot tell. */
#define LIMIT_QUERY_AT_TS_WAIT_MS 2000
#define LIMIT_QUERY_ROWS_MAX 10000         /* rows one function may read */
#define LIMIT_WRITES_PER_MUTATION_MAX 8192 /* documents one mutation may write */
#define LIMIT_WRITE_QUEUE_MAX 10000        /* mutations waiting for the storage thread */
#define LIMIT_COMMIT_GROUP_MAX 256         /* mutations committed by one fsync */
/* Bytes of calls (their arguments) waiting for the storage thread and for
 * the readers: past them a call is refused as busy, like past the counts. */
#define LIMIT_WRITE_QUEUE_BYTES_MAX (64u * 1024 * 1024)
#define LIMIT_READ_QUEUE_BYTES_MAX (64u * 1024 * 1024)
/* Bytes of documents one commit group writes (and holds until it commits):
 * past them the group commits and the calls after it wait for the next. */
#define LIMIT_COMMIT_GROUP_BYTES_MAX (32u * 1024 * 1024)
#define LIMIT_READ_QUEUE_MAX 10000 /* queries waiting for a reader */
#define LIMIT_LEASE_SECONDS_MIN 1
#define LIMIT_LEASE_SECONDS_MAX 3600
/* The query cache (engine/subs.h): results of queries nobody subscribes to,
 * kept until a commit changes what they read (`dojo serve
 * --query-cache-bytes`). */
#define LIMIT_QUERY_CACHE_BYTES_DEFAULT (64u * 1024 * 1024)
#define LIMIT_QUERY_CACHE_BYTES_MAX (16ull * 1024 * 1024 * 1024)
/* The history of recent commits the subscription manager keeps (their index
 * keys, not their documents) to tell whether a run that started before
 * some commits read anything they wrote: by count and by bytes, whichever
 * is reached first. A run older than the history simply runs again. */
#define LIMIT_COMMIT_HISTORY_COMMITS_MAX 1024
#define LIMIT_COMMIT_HISTORY_BYTES_MAX (4u * 1024 * 1024)
/* The write sets of commits a process holds while it waits for their
 * notices (several processes on one PostgreSQL): past it, the newer ones
 * say "everything" instead of listing their keys. */
#define LIMIT_COMMIT_ORDER_BYTES_MAX (4u * 1024 * 1024)
#define LIMIT_SESSION_REQUEST_RETENTION_MS (14ull * 24 * 3600 * 1000)

/* Files (api.md §9; proto/storage_http.c, store/files*.c, app/files.c) */
#define LIMIT_FILE_BYTES_DEFAULT (100ull * 1024 * 1024)   /* FILE_MAX_BYTES when unset */
#define LIMIT_FILE_BYTES_MAX (64ull * 1024 * 1024 * 1024) /* the largest FILE_MAX_BYTES */
/* Body bytes one upload holds in memory before they are written out: the
 * bound on an upload's memory whatever the file's size. */
#define LIMIT_FILE_UPLOAD_BUFFER_BYTES (256u * 1024)
#define LIMIT_FILE_UPLOADS_MAX 64               /* uploads in progress at once; then 503 */
#define LIMIT_FILE_DOWNLOADS_MAX 1024           /* downloads being sent at once; then 503 */
#define LIMIT_FILE_UPLOAD_IDLE_TIMEOUT_MS 30000 /* an upload that sends nothing this long: 408 */
#define LIMIT_FILE_UPLOAD_TOKEN_TTL_MS (3600ull * 1000) /* files:generateUploadUrl */
#define LIMIT_FILE_SEND_BYTES (1u * 1024 * 1024)        /* one sendfile(2) of a download */
#define LIMIT_FILE_PG_CHUNK_BYTES (256u * 1024) /* PostgreSQL: the bytes of one stored row */
#define LIMIT_FILE_RUNS_CHECKED_MAX 100         /* runs looked at to tell whose output a file is */

/* The generation worker (api.md §10; cli/worker*.c) */
#define LIMIT_WORKER_KEY_CHARS_MIN 32
#define LIMIT_WORKER_CONCURRENCY_MAX 64
#define LIMIT_WORKER_TIMEOUT_S_DEFAULT 600
#define LIMIT_WORKER_TIMEOUT_S_MAX (7 * 24 * 3600)
#define LIMIT_WORKER_STDERR_LINE_BYTES_MAX 1024    /* of a failed command, in the run's error */
#define LIMIT_WORKER_STDOUT_BYTES_MAX (64u * 1024) /* the tail kept, for its last line */
#define LIMIT_WORKER_DRAIN_MS 30000         /* on SIGTERM, running commands may finish this long */
#define LIMIT_WORKER_RECONNECT_MS_MAX 16000 /* backoff between connection attempts */

/* Auth (auth/) */
#define LIMIT_JWT_BYTES_MAX (16u * 1024)
#define LIMIT_JWT_CLOCK_SKEW_S 60
#define LIMIT_JWKS_REFETCH_INTERVAL_MS 60000
#define LIMIT_JWKS_FETCH_TIMEOUT_MS 10000
#define LIMIT_JWKS_BYTES_MAX (1u * 1024 * 1024)
#define LIMIT_JWKS_KEYS_MAX 64
#define LIMIT_ADMIN_KEY_BYTES_MAX 256
/* iss + "|" + sub, both from a token of at most LIMIT_JWT_BYTES_MAX. */
#define LIMIT_TOKEN_IDENTIFIER_BYTES_MAX LIMIT_JWT_BYTES_MAX

/* Backups (backup/, `dojo backup`, `dojo restore`, `dojo serve --backup-*`) */
#define LIMIT_BACKUP_INTERVAL_S_MIN 1                 /* --backup-every */
#define LIMIT_BACKUP_INTERVAL_S_MAX (366 * 24 * 3600) /* --backup-every: a year */
#define LIMIT_BACKUP_KEEP_MAX 1000                    /* --backup-keep */
#define LIMIT_BACKUP_FILES_MAX 1000000                /* files of the files directory */
#define LIMIT_BACKUP_FILES_DEPTH_MAX 4                /* its subdirectory levels */
#define LIMIT_BACKUP_MEMBER_BYTES_MAX (1ull << 40)    /* one member (database, file): 1 TiB */
#define LIMIT_BACKUP_NAME_BYTES_MAX 255               /* a member's path in the archive */
#define LIMIT_BACKUP_MANIFEST_LINE_BYTES_MAX 1024     /* one line of MANIFEST.jsonl */
#define LIMIT_BACKUP_SNAPSHOT_STEP_PAGES 1024         /* pages copied between cancel checks */

/* Dashboard Overview queries (app/overview.c): rows one chart query reads,
 * newest first (past it the chart covers only the newest rows and says from
 * when), the window it may ask for, and queued or processing runs counted
 * (past it: "at least"). */
#define LIMIT_DASHBOARD_CHART_ROWS_MAX 2000
#define LIMIT_DASHBOARD_CHART_WINDOW_MS_MAX (92.0 * 24 * 3600 * 1000)
#define LIMIT_DASHBOARD_QUEUE_ROWS_MAX 1000

#endif
