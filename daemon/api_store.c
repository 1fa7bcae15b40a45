/* daemon/api_store: the API's resources in SQLite (<state_dir>/api.db, WAL): agents and every
 * version of them, environments, and the sessions' API fields (the pinned agent, title,
 * metadata, ...). Writes and lists go through one connection, serialized by a mutex: the API's
 * requests are small and the log, not this store, carries the load. api_store_get has a
 * read-only connection of its own, so that a read never waits behind a write's synced commit.
 * Bodies are JSON text the API made; the store never looks inside them. It must never hold what a
 * session did: that is the log's. Schema changes are numbered migrations (PRAGMA user_version), as
 * in log/catalog.c. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "corral/cleanup.h"
#include "daemon/api-internal.h"

#define SCHEMA_VERSION 1

static const char *const migrations[SCHEMA_VERSION] = {
	/* 1 */
	"CREATE TABLE agents ("
	"  pos INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  created_ns INTEGER NOT NULL,"
	"  archived_ns INTEGER,"
	"  version INTEGER NOT NULL);"
	"CREATE TABLE agent_versions ("
	"  agent_id TEXT NOT NULL REFERENCES agents(id),"
	"  version INTEGER NOT NULL,"
	"  created_ns INTEGER NOT NULL,"
	"  body TEXT NOT NULL,"
	"  PRIMARY KEY (agent_id, version)) WITHOUT ROWID;"
	"CREATE TABLE environments ("
	"  pos INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  created_ns INTEGER NOT NULL,"
	"  updated_ns INTEGER NOT NULL,"
	"  archived_ns INTEGER,"
	"  deleted_ns INTEGER,"
	"  body TEXT NOT NULL);"
	"CREATE TABLE sessions ("
	"  pos INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  id TEXT NOT NULL UNIQUE,"
	"  created_ns INTEGER NOT NULL,"
	"  updated_ns INTEGER NOT NULL,"
	"  archived_ns INTEGER,"
	"  deleted_ns INTEGER,"
	"  agent_id TEXT NOT NULL,"
	"  agent_version INTEGER NOT NULL,"
	"  environment_id TEXT NOT NULL,"
	"  body TEXT NOT NULL);"
	"CREATE INDEX sessions_agent ON sessions(agent_id, agent_version);",
};

struct api_store {
	pthread_mutex_t lock;
	sqlite3 *db;
	char path[256];
	/* api_store_get's own connection, read-only: in WAL mode it never waits for a write's
	 * commit (a synced WAL, now and then a checkpoint) on the other one, and every request
	 * and every wake's configuration reads records. Its statements, by kind and deleted_ok,
	 * are prepared at first use and kept. */
	pthread_mutex_t rlock;
	sqlite3 *rdb;
	sqlite3_stmt *get[API_SESSION + 1][2];
};

static void finalizep(sqlite3_stmt **st)
{
	sqlite3_finalize(*st); /* (NULL is a no-op) */
}
#define _cleanup_stmt_ _cleanup_(finalizep)

/* -EIO naming what failed on connection db (st->db or st->rdb) and SQLite's reason. */
static int sql_error(struct api_store *st, sqlite3 *db, struct cr_error *err, const char *what)
{
	return cr_error_set(err, EIO, "api store %s: %s: %s", st->path, what, sqlite3_errmsg(db));
}

static int exec(struct api_store *st, const char *sql, struct cr_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int r = cr_error_set(err, EIO, "api store %s: %s", st->path,
				     msg ? msg : sqlite3_errmsg(st->db));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

static int prepare(struct api_store *st, const char *sql, sqlite3_stmt **ret, struct cr_error *err)
{
	if (sqlite3_prepare_v2(st->db, sql, -1, ret, NULL) != SQLITE_OK)
		return sql_error(st, st->db, err, "prepare");
	return 0;
}

static int migrate(struct api_store *st, struct cr_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r = prepare(st, "PRAGMA user_version", &q, err);
	if (r < 0)
		return r;
	int version = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int(q, 0) : 0;
	if (version > SCHEMA_VERSION)
		return cr_error_set(
			err, EPROTONOSUPPORT,
			"api store %s has schema version %d; this corral knows up to %d", st->path,
			version, SCHEMA_VERSION);
	for (int v = version; v < SCHEMA_VERSION; v++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version=%d;", v + 1);
		if ((r = exec(st, "BEGIN IMMEDIATE;", err)) < 0)
			return r;
		if ((r = exec(st, migrations[v], err)) < 0 || (r = exec(st, bump, err)) < 0 ||
		    (r = exec(st, "COMMIT;", err)) < 0) {
			exec(st, "ROLLBACK;", NULL);
			return cr_error_prefix(err, "migrate api store to version %d", v + 1);
		}
	}
	return 0;
}

int api_store_open(const char *path, struct api_store **ret, struct cr_error *err)
{
	struct api_store *st = calloc(1, sizeof(*st));
	if (!st)
		return cr_error_errno(err, ENOMEM, "api store");
	snprintf(st->path, sizeof(st->path), "%s", path);
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->rlock, NULL);
	/* Serialized: a statement may be finalized (by its cleanup) after the store's lock is let
	 * go. */
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
	int r;
	/* made 0600 before SQLite opens it (its -wal and -shm files take the same mode):
	 * agents' prompts and metadata are nobody else's business */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = cr_error_errno(err, errno, "api store %s", path);
		goto fail;
	}
	close(fd);
	if (sqlite3_open_v2(path, &st->db, flags, NULL) != SQLITE_OK) {
		r = cr_error_set(err, EIO, "api store %s: %s", path,
				 st->db ? sqlite3_errmsg(st->db) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(st->db, 5000);
	r = exec(st, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
		 err);
	if (r < 0 || (r = migrate(st, err)) < 0)
		goto fail;
	/* (opened after the migrations: it sees the schema they made) */
	if (sqlite3_open_v2(path, &st->rdb, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) !=
	    SQLITE_OK) {
		r = cr_error_set(err, EIO, "api store %s: %s", path,
				 st->rdb ? sqlite3_errmsg(st->rdb) : "cannot open");
		goto fail;
	}
	sqlite3_busy_timeout(st->rdb, 5000);
	*ret = st;
	return 0;
fail:
	api_store_close(st);
	return r;
}

void api_store_close(struct api_store *st)
{
	if (!st)
		return;
	for (size_t k = 0; k < sizeof(st->get) / sizeof(st->get[0]); k++)
		for (size_t d = 0; d < 2; d++)
			sqlite3_finalize(st->get[k][d]);
	sqlite3_close(st->rdb);
	sqlite3_close(st->db);
	pthread_mutex_destroy(&st->rlock);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

void api_record_clear(struct api_record *r)
{
	if (r) {
		json_decref(r->body);
		r->body = NULL;
	}
}

void api_records_free(struct api_record *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		api_record_clear(&v[i]);
	free(v);
}

/* --- reading rows ------------------------------------------------------------------------- */

/* Every select yields the same columns, so one reader fills a record of any kind. */
#define COLUMNS                                                                            \
	"pos, id, created_ns, updated_ns, archived_ns, version, agent_id, agent_version, " \
	"environment_id, body"

/* The rows of each kind as a view of those columns. */
static const char *source(enum api_kind kind)
{
	switch (kind) {
	case API_AGENT:
		return "(SELECT a.pos AS pos, a.id AS id, a.created_ns AS created_ns,"
		       " v.created_ns AS updated_ns, a.archived_ns AS archived_ns,"
		       " a.version AS version, NULL AS agent_id, 0 AS agent_version,"
		       " NULL AS environment_id, v.body AS body, NULL AS deleted_ns"
		       " FROM agents a JOIN agent_versions v"
		       " ON v.agent_id = a.id AND v.version = a.version)";
	case API_AGENT_VERSION:
		return "(SELECT v.version AS pos, a.id AS id, a.created_ns AS created_ns,"
		       " v.created_ns AS updated_ns, a.archived_ns AS archived_ns,"
		       " v.version AS version, a.id AS agent_id, v.version AS agent_version,"
		       " NULL AS environment_id, v.body AS body, NULL AS deleted_ns"
		       " FROM agent_versions v JOIN agents a ON a.id = v.agent_id)";
	case API_ENVIRONMENT:
		return "(SELECT pos, id, created_ns, updated_ns, archived_ns, 0 AS version,"
		       " NULL AS agent_id, 0 AS agent_version, NULL AS environment_id, body,"
		       " deleted_ns FROM environments)";
	case API_SESSION:
		return "(SELECT pos, id, created_ns, updated_ns, archived_ns, 0 AS version,"
		       " agent_id, agent_version, environment_id, body, deleted_ns FROM sessions)";
	}
	return NULL;
}

static const char *table(enum api_kind kind)
{
	switch (kind) {
	case API_AGENT:
	case API_AGENT_VERSION:
		return "agents";
	case API_ENVIRONMENT:
		return "environments";
	case API_SESSION:
		return "sessions";
	}
	return NULL;
}

static void copy_text(char *dst, size_t size, sqlite3_stmt *q, int col)
{
	const unsigned char *t = sqlite3_column_text(q, col);
	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

static int read_row(struct api_store *st, sqlite3_stmt *q, struct api_record *ret,
		    struct cr_error *err)
{
	struct api_record r = { 0 };
	r.pos = sqlite3_column_int64(q, 0);
	copy_text(r.id, sizeof(r.id), q, 1);
	r.created_ns = (uint64_t)sqlite3_column_int64(q, 2);
	r.updated_ns = (uint64_t)sqlite3_column_int64(q, 3);
	r.archived_ns = (uint64_t)sqlite3_column_int64(q, 4); /* (NULL reads as 0) */
	r.version = sqlite3_column_int64(q, 5);
	copy_text(r.agent, sizeof(r.agent), q, 6);
	r.agent_version = sqlite3_column_int64(q, 7);
	copy_text(r.environment, sizeof(r.environment), q, 8);
	const char *body = (const char *)sqlite3_column_text(q, 9);
	json_error_t je;
	r.body = body ? json_loads(body, 0, &je) : NULL;
	if (!json_is_object(r.body)) {
		json_decref(r.body);
		return cr_error_set(err, EIO, "api store %s: the body of %s is not a JSON object",
				    st->path, r.id);
	}
	*ret = r;
	return 0;
}

int api_store_get(struct api_store *st, enum api_kind kind, const char *id, int64_t version,
		  bool deleted_ok, struct api_record *ret, struct cr_error *err)
{
	pthread_mutex_lock(&st->rlock);
	sqlite3_stmt **q = &st->get[kind][deleted_ok];
	int r = 0;
	if (!*q) {
		char sql[1024];
		snprintf(sql, sizeof(sql), "SELECT " COLUMNS " FROM %s WHERE id = ?1%s%s",
			 source(kind), kind == API_AGENT_VERSION ? " AND version = ?2" : "",
			 deleted_ok ? "" : " AND deleted_ns IS NULL");
		if (sqlite3_prepare_v2(st->rdb, sql, -1, q, NULL) != SQLITE_OK)
			r = sql_error(st, st->rdb, err, "prepare");
	}
	if (r == 0) {
		sqlite3_bind_text(*q, 1, id, -1, SQLITE_STATIC);
		if (kind == API_AGENT_VERSION)
			sqlite3_bind_int64(*q, 2, version);
		int s = sqlite3_step(*q);
		if (s == SQLITE_ROW)
			r = read_row(st, *q, ret, err);
		else if (s == SQLITE_DONE)
			r = cr_error_set(err, ENOENT, "%s not found", id);
		else
			r = sql_error(st, st->rdb, err, "read");
		sqlite3_reset(*q);
		sqlite3_clear_bindings(*q); /* (id is the caller's) */
	}
	pthread_mutex_unlock(&st->rlock);
	return r;
}

int api_store_list(struct api_store *st, const struct api_query *qy, struct api_record **ret,
		   size_t *ret_n, struct cr_error *err)
{
	char sql[2048];
	int n = snprintf(sql, sizeof(sql), "SELECT " COLUMNS " FROM %s WHERE deleted_ns IS NULL",
			 source(qy->kind));
	/* parameters by number: ?1 agent, ?2 agent_version, ?3 after, ?4 created_min,
	 * ?5 created_max, ?6 limit */
	if (qy->kind == API_AGENT_VERSION || (qy->kind == API_SESSION && qy->agent))
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND agent_id = ?1");
	if (qy->kind == API_SESSION && qy->agent && qy->agent_version > 0)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND agent_version = ?2");
	if (!qy->include_archived)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND archived_ns IS NULL");
	if (qy->after > 0)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND pos %s ?3",
			      qy->desc ? "<" : ">");
	if (qy->created_min)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND created_ns >= ?4");
	if (qy->created_max)
		n += snprintf(sql + n, sizeof(sql) - (size_t)n, " AND created_ns <= ?5");
	snprintf(sql + n, sizeof(sql) - (size_t)n, " ORDER BY pos %s LIMIT ?6",
		 qy->desc ? "DESC" : "ASC");

	struct api_record *v = calloc(qy->limit ? qy->limit : 1, sizeof(*v));
	if (!v)
		return cr_error_errno(err, ENOMEM, "api store list");
	size_t got = 0;
	pthread_mutex_lock(&st->lock);
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r = prepare(st, sql, &q, err);
	if (r == 0) {
		if (qy->agent)
			sqlite3_bind_text(q, 1, qy->agent, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, qy->agent_version);
		sqlite3_bind_int64(q, 3, qy->after);
		sqlite3_bind_int64(q, 4, (sqlite3_int64)qy->created_min);
		sqlite3_bind_int64(q, 5, (sqlite3_int64)qy->created_max);
		sqlite3_bind_int64(q, 6, (sqlite3_int64)qy->limit);
		int s = SQLITE_DONE;
		while (got < qy->limit && (s = sqlite3_step(q)) == SQLITE_ROW) {
			if ((r = read_row(st, q, &v[got], err)) < 0)
				break;
			got++;
		}
		if (r == 0 && got < qy->limit && s != SQLITE_DONE)
			r = sql_error(st, st->db, err, "list");
	}
	pthread_mutex_unlock(&st->lock);
	if (r < 0) {
		api_records_free(v, got);
		return r;
	}
	*ret = v;
	*ret_n = got;
	return 0;
}

/* --- writing ------------------------------------------------------------------------------ */

static int step_done(struct api_store *st, sqlite3_stmt *q, struct cr_error *err, const char *what)
{
	int s = sqlite3_step(q);
	if (s == SQLITE_CONSTRAINT)
		return cr_error_set(err, EEXIST, "api store: %s: %s", what, sqlite3_errmsg(st->db));
	if (s != SQLITE_DONE)
		return sql_error(st, st->db, err, what);
	return 0;
}

static int insert_locked(struct api_store *st, enum api_kind kind, struct api_record *rec,
			 const char *body, struct cr_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r;
	switch (kind) {
	case API_AGENT:
		r = prepare(st, "INSERT INTO agents (id, created_ns, version) VALUES (?1, ?2, 1)",
			    &q, err);
		break;
	case API_ENVIRONMENT:
		r = prepare(st,
			    "INSERT INTO environments (id, created_ns, updated_ns, body) "
			    "VALUES (?1, ?2, ?3, ?4)",
			    &q, err);
		break;
	case API_SESSION:
		r = prepare(st,
			    "INSERT INTO sessions (id, created_ns, updated_ns, body, agent_id, "
			    "agent_version, environment_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
			    &q, err);
		break;
	default:
		return cr_error_set(err, EINVAL, "api store: cannot insert this kind");
	}
	if (r < 0)
		return r;
	sqlite3_bind_text(q, 1, rec->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, (sqlite3_int64)rec->created_ns);
	if (kind != API_AGENT) {
		sqlite3_bind_int64(q, 3, (sqlite3_int64)rec->updated_ns);
		sqlite3_bind_text(q, 4, body, -1, SQLITE_STATIC);
	}
	if (kind == API_SESSION) {
		sqlite3_bind_text(q, 5, rec->agent, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 6, rec->agent_version);
		sqlite3_bind_text(q, 7, rec->environment, -1, SQLITE_STATIC);
	}
	if ((r = step_done(st, q, err, "insert")) < 0)
		return r;
	rec->pos = sqlite3_last_insert_rowid(st->db);
	if (kind != API_AGENT)
		return 0;
	_cleanup_stmt_ sqlite3_stmt *v = NULL;
	if ((r = prepare(st,
			 "INSERT INTO agent_versions (agent_id, version, created_ns, body) "
			 "VALUES (?1, 1, ?2, ?3)",
			 &v, err)) < 0)
		return r;
	sqlite3_bind_text(v, 1, rec->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(v, 2, (sqlite3_int64)rec->created_ns);
	sqlite3_bind_text(v, 3, body, -1, SQLITE_STATIC);
	rec->version = 1;
	return step_done(st, v, err, "insert version");
}

int api_store_insert(struct api_store *st, enum api_kind kind, struct api_record *rec,
		     struct cr_error *err)
{
	_cleanup_free_ char *body = json_dumps(rec->body, JSON_COMPACT);
	if (!body)
		return cr_error_errno(err, ENOMEM, "api store insert");
	pthread_mutex_lock(&st->lock);
	int r = exec(st, "BEGIN IMMEDIATE;", err);
	if (r == 0) {
		r = insert_locked(st, kind, rec, body, err);
		if (r == 0)
			r = exec(st, "COMMIT;", err);
		if (r < 0)
			exec(st, "ROLLBACK;", NULL);
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

static int update_agent_locked(struct api_store *st, const char *id, int64_t expect_version,
			       const char *body, uint64_t now_ns, struct cr_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r = prepare(st, "SELECT version FROM agents WHERE id = ?1", &q, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	int s = sqlite3_step(q);
	if (s == SQLITE_DONE)
		return cr_error_set(err, ENOENT, "%s not found", id);
	if (s != SQLITE_ROW)
		return sql_error(st, st->db, err, "read agent version");
	int64_t current = sqlite3_column_int64(q, 0);
	if (expect_version > 0 && expect_version != current)
		return cr_error_set(err, ESTALE,
				    "version %" PRId64 " is not the current version of agent %s "
				    "(%" PRId64 "): retrieve it and apply the change again",
				    expect_version, id, current);
	_cleanup_stmt_ sqlite3_stmt *v = NULL;
	if ((r = prepare(st,
			 "INSERT INTO agent_versions (agent_id, version, created_ns, body) "
			 "VALUES (?1, ?2, ?3, ?4)",
			 &v, err)) < 0)
		return r;
	sqlite3_bind_text(v, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(v, 2, current + 1);
	sqlite3_bind_int64(v, 3, (sqlite3_int64)now_ns);
	sqlite3_bind_text(v, 4, body, -1, SQLITE_STATIC);
	if ((r = step_done(st, v, err, "insert version")) < 0)
		return r;
	_cleanup_stmt_ sqlite3_stmt *u = NULL;
	if ((r = prepare(st, "UPDATE agents SET version = ?2 WHERE id = ?1", &u, err)) < 0)
		return r;
	sqlite3_bind_text(u, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(u, 2, current + 1);
	return step_done(st, u, err, "update agent");
}

static int update_body_locked(struct api_store *st, enum api_kind kind, const char *id,
			      const char *body, uint64_t now_ns, struct cr_error *err)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "UPDATE %s SET body = ?2, updated_ns = ?3 WHERE id = ?1 AND deleted_ns IS NULL",
		 table(kind));
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r = prepare(st, sql, &q, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, body, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 3, (sqlite3_int64)now_ns);
	if ((r = step_done(st, q, err, "update")) < 0)
		return r;
	return sqlite3_changes(st->db) ? 0 : cr_error_set(err, ENOENT, "%s not found", id);
}

int api_store_update(struct api_store *st, enum api_kind kind, const char *id,
		     int64_t expect_version, const json_t *body, uint64_t now_ns,
		     struct api_record *ret, struct cr_error *err)
{
	_cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
	if (!text)
		return cr_error_errno(err, ENOMEM, "api store update");
	pthread_mutex_lock(&st->lock);
	int r = exec(st, "BEGIN IMMEDIATE;", err);
	if (r == 0) {
		if (kind == API_AGENT)
			r = update_agent_locked(st, id, expect_version, text, now_ns, err);
		else
			r = update_body_locked(st, kind, id, text, now_ns, err);
		if (r == 0)
			r = exec(st, "COMMIT;", err);
		if (r < 0)
			exec(st, "ROLLBACK;", NULL);
	}
	pthread_mutex_unlock(&st->lock);
	if (r == 0 && ret)
		r = api_store_get(st, kind, id, 0, false, ret, err);
	return r;
}

static int set_time(struct api_store *st, enum api_kind kind, const char *id, const char *column,
		    uint64_t now_ns, struct cr_error *err)
{
	char sql[256];
	/* agents have no deleted_ns; the others' deleted rows are gone for the API */
	snprintf(sql, sizeof(sql), "UPDATE %s SET %s = coalesce(%s, ?2)%s WHERE id = ?1%s",
		 table(kind), column, column, kind == API_AGENT ? "" : ", updated_ns = ?2",
		 kind == API_AGENT ? "" : " AND deleted_ns IS NULL");
	pthread_mutex_lock(&st->lock);
	_cleanup_stmt_ sqlite3_stmt *q = NULL;
	int r = prepare(st, sql, &q, err);
	if (r == 0) {
		sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, (sqlite3_int64)now_ns);
		r = step_done(st, q, err, column);
		if (r == 0 && sqlite3_changes(st->db) == 0)
			r = cr_error_set(err, ENOENT, "%s not found", id);
	}
	pthread_mutex_unlock(&st->lock);
	return r;
}

int api_store_archive(struct api_store *st, enum api_kind kind, const char *id, uint64_t now_ns,
		      struct cr_error *err)
{
	return set_time(st, kind, id, "archived_ns", now_ns, err);
}

int api_store_delete(struct api_store *st, enum api_kind kind, const char *id, uint64_t now_ns,
		     struct cr_error *err)
{
	if (kind != API_ENVIRONMENT && kind != API_SESSION)
		return cr_error_set(err, EINVAL,
				    "api store: only environments and sessions are "
				    "deleted");
	return set_time(st, kind, id, "deleted_ns", now_ns, err);
}
