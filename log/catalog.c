/* log/catalog: SQLite catalog. Every statement's error becomes a cr_error naming the catalog. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/catalog.h"

static const char *const migrations[CATALOG_SCHEMA_VERSION] = {
	/* 1 */
	"CREATE TABLE sessions ("
	"  id TEXT PRIMARY KEY,"
	"  created_ns INTEGER NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'idle',"
	"  epoch INTEGER NOT NULL,"
	"  last_seq INTEGER NOT NULL);"
	"CREATE TABLE leases ("
	"  session_id TEXT PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,"
	"  epoch INTEGER NOT NULL,"
	"  holder TEXT,"
	"  heartbeat_ns INTEGER);",
	/* 2 */
	"CREATE TABLE sandboxes ("
	"  id TEXT PRIMARY KEY,"
	"  session_id TEXT NOT NULL,"
	"  address TEXT UNIQUE);"
	"CREATE INDEX sandboxes_session ON sandboxes(session_id);",
};

static int sql_error(sqlite3 *db, struct cr_error *err, const char *what)
{
	return cr_error_set(err, EIO, "catalog: %s: %s", what, sqlite3_errmsg(db));
}

static int exec(sqlite3 *db, const char *sql, struct cr_error *err)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		int r = cr_error_set(err, EIO, "catalog: %s", msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return r;
	}
	return 0;
}

int catalog_open(const char *path, sqlite3 **ret, struct cr_error *err)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		int r = cr_error_set(err, EIO, "catalog %s: %s", path,
				     db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return r;
	}
	sqlite3_busy_timeout(db, 5000);
	int r = exec(db,
		     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
		     "PRAGMA foreign_keys=ON;",
		     err);
	if (r < 0)
		goto fail;

	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
		r = sql_error(db, err, "read schema version");
		goto fail;
	}
	int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);
	if (version > CATALOG_SCHEMA_VERSION) {
		r = cr_error_set(err, EPROTONOSUPPORT,
				 "catalog %s has schema version %d; this corral knows up to %d",
				 path, version, CATALOG_SCHEMA_VERSION);
		goto fail;
	}
	for (int v = version; v < CATALOG_SCHEMA_VERSION; v++) {
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version=%d;", v + 1);
		if ((r = exec(db, "BEGIN IMMEDIATE;", err)) < 0)
			goto fail;
		if ((r = exec(db, migrations[v], err)) < 0 || (r = exec(db, bump, err)) < 0 ||
		    (r = exec(db, "COMMIT;", err)) < 0) {
			exec(db, "ROLLBACK;", NULL);
			cr_error_prefix(err, "migrate catalog %s to version %d", path, v + 1);
			goto fail;
		}
	}
	*ret = db;
	return 0;
fail:
	sqlite3_close(db);
	return r;
}

void catalog_close(sqlite3 *db)
{
	sqlite3_close(db);
}

static int put(sqlite3 *db, const struct catalog_session *s, int *changed, struct cr_error *err)
{
	static const char sql[] =
		"INSERT INTO sessions (id, created_ns, epoch, last_seq) VALUES (?1, ?2, ?3, ?4) "
		"ON CONFLICT(id) DO UPDATE SET created_ns = ?2, epoch = ?3, last_seq = ?4 "
		"WHERE created_ns != ?2 OR epoch != ?3 OR last_seq != ?4";
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_error(db, err, "prepare session upsert");
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)s->created_ns);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)s->epoch);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)s->last_seq);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_error(db, err, "write session");
	if (changed)
		*changed += sqlite3_changes(db);
	return 0;
}

int catalog_put(sqlite3 *db, const struct catalog_session *s, struct cr_error *err)
{
	return put(db, s, NULL, err);
}

int catalog_repair(sqlite3 *db, const struct catalog_session *sessions, size_t n,
		   struct cr_error *err)
{
	int changed = 0, r;
	if ((r = exec(db,
		      "BEGIN IMMEDIATE; CREATE TEMP TABLE IF NOT EXISTS log_ids (id TEXT "
		      "PRIMARY KEY); DELETE FROM log_ids;",
		      err)) < 0)
		return r;
	sqlite3_stmt *ins = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO log_ids VALUES (?1)", -1, &ins, NULL) !=
	    SQLITE_OK) {
		r = sql_error(db, err, "prepare repair");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if ((r = put(db, &sessions[i], &changed, err)) < 0)
			goto fail;
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, sessions[i].id, -1, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE) {
			r = sql_error(db, err, "repair");
			goto fail;
		}
	}
	sqlite3_finalize(ins);
	ins = NULL;
	if ((r = exec(db, "DELETE FROM sessions WHERE id NOT IN (SELECT id FROM log_ids);", err)) <
	    0)
		goto fail;
	changed += sqlite3_changes(db);
	if ((r = exec(db, "COMMIT;", err)) < 0)
		goto fail;
	return changed;
fail:
	sqlite3_finalize(ins);
	exec(db, "ROLLBACK;", NULL);
	return r;
}

/* --- sandboxes ------------------------------------------------------------------------------ */

/* A sandbox's address is its own: a row that held it before (a sandbox gone without its row
 * being removed) gives way (OR REPLACE removes the row the UNIQUE address collides with). */
static int sandbox_put(sqlite3 *db, const struct cr_log_sandbox *s, struct cr_error *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db,
			       "INSERT OR REPLACE INTO sandboxes (id, session_id, address) "
			       "VALUES (?1, ?2, ?3)",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_error(db, err, "prepare sandbox upsert");
	sqlite3_bind_text(st, 1, s->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, s->session, -1, SQLITE_STATIC);
	if (s->address[0])
		sqlite3_bind_text(st, 3, s->address, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 3);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_error(db, err, "write sandbox");
}

int catalog_sandbox_put(sqlite3 *db, const struct cr_log_sandbox *s, struct cr_error *err)
{
	return sandbox_put(db, s, err);
}

int catalog_sandbox_delete(sqlite3 *db, const char *id, struct cr_error *err)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "DELETE FROM sandboxes WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return sql_error(db, err, "prepare sandbox delete");
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : sql_error(db, err, "delete sandbox");
}

static void copy_column(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	snprintf(buf, size, "%s", v ? (const char *)v : "");
}

int catalog_sandboxes(sqlite3 *db, const char *address, struct cr_log_sandbox **ret, size_t *ret_n,
		      struct cr_error *err)
{
	sqlite3_stmt *st;
	const char *sql = address ? "SELECT id, session_id, address FROM sandboxes "
				    "WHERE address = ?1"
				  : "SELECT id, session_id, address FROM sandboxes "
				    "ORDER BY id";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_error(db, err, "prepare sandbox query");
	if (address)
		sqlite3_bind_text(st, 1, address, -1, SQLITE_STATIC);
	struct cr_log_sandbox *v = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t c = cap ? cap * 2 : 8;
			struct cr_log_sandbox *nv = realloc(v, c * sizeof(*v));
			if (!nv) {
				free(v);
				sqlite3_finalize(st);
				return cr_error_errno(err, ENOMEM, "catalog: sandboxes");
			}
			v = nv;
			cap = c;
		}
		struct cr_log_sandbox *s = &v[n++];
		copy_column(st, 0, s->id, sizeof(s->id));
		copy_column(st, 1, s->session, sizeof(s->session));
		copy_column(st, 2, s->address, sizeof(s->address));
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(v);
		return sql_error(db, err, "read sandboxes");
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int catalog_sandboxes_reset(sqlite3 *db, const struct cr_log_sandbox *v, size_t n,
			    struct cr_error *err)
{
	int r = exec(db, "BEGIN IMMEDIATE; DELETE FROM sandboxes;", err);
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < n; i++)
		r = sandbox_put(db, &v[i], err);
	if (r == 0)
		r = exec(db, "COMMIT;", err);
	if (r < 0)
		exec(db, "ROLLBACK;", NULL);
	return r;
}
