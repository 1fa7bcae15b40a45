/* daemon/api-internal: what daemon/api.c shares with its store, daemon/api_store.c: the records
 * of the API's own resources (agents and their versions, environments, the sessions' API
 * fields) in <state_dir>/api.db. The store keeps JSON bodies as the API made them and never
 * interprets them; the API validates, renders and decides. The log, not this store, holds
 * what sessions do. Nothing outside daemon/api*.c includes this. */
#ifndef CORRAL_DAEMON_API_INTERNAL_H
#define CORRAL_DAEMON_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "corral/error.h"
#include "corral/log.h"

enum api_kind {
	API_AGENT, /* an agent at its latest version */
	API_AGENT_VERSION, /* one version of an agent (lists: the versions of query.parent) */
	API_ENVIRONMENT,
	API_SESSION,
};

struct api_record {
	char id[CR_LOG_ID_MAX];
	int64_t pos; /* its place in its list, increasing with creation; cursors name it */
	uint64_t created_ns; /* CLOCK_REALTIME */
	uint64_t updated_ns; /* agents: when this version was made */
	uint64_t archived_ns; /* 0: not archived */
	int64_t version; /* agents: the version body is; else 0 */
	char agent[CR_LOG_ID_MAX]; /* sessions: the pinned agent ... */
	int64_t agent_version; /* ... at this version */
	char environment[CR_LOG_ID_MAX]; /* sessions: their environment */
	json_t *body; /* owned: the resource's own fields */
};

struct api_query {
	enum api_kind kind;
	const char *agent; /* API_AGENT_VERSION: whose versions; API_SESSION: filter (NULL: all) */
	int64_t agent_version; /* API_SESSION with agent: only this version (0: any) */
	bool include_archived;
	bool desc; /* by pos, highest first */
	int64_t after; /* only records past this pos in the order's direction (0: from the start) */
	uint64_t created_min, created_max; /* inclusive bounds on created_ns (0: none) */
	size_t limit;
};

struct api_store;

/* Opens (creating) the store at path, migrated to the current schema; a store from a newer
 * corral is refused (-EPROTONOSUPPORT). *ret is owned by the caller. Thread-safe: calls are
 * serialized on one connection. */
int api_store_open(const char *path, struct api_store **ret, struct cr_error *err);
void api_store_close(struct api_store *st);

/* Inserts rec (kind API_AGENT makes version 1 from rec->body; rec->pos is set). -EEXIST when
 * the id is taken. */
int api_store_insert(struct api_store *st, enum api_kind kind, struct api_record *rec,
		     struct cr_error *err);

/* The record of id; for API_AGENT_VERSION, of that version. Deleted records are -ENOENT
 * unless deleted_ok. *ret is owned by the caller (api_record_clear). */
int api_store_get(struct api_store *st, enum api_kind kind, const char *id, int64_t version,
		  bool deleted_ok, struct api_record *ret, struct cr_error *err);

/* Replaces the body of id. For API_AGENT, adds version current + 1 with body, refused with
 * -ESTALE when expect_version > 0 and is not the current version. *ret (may be NULL) gets the
 * updated record. -ENOENT for an unknown (or deleted) id. */
int api_store_update(struct api_store *st, enum api_kind kind, const char *id,
		     int64_t expect_version, const json_t *body, uint64_t now_ns,
		     struct api_record *ret, struct cr_error *err);

/* Sets archived_ns (once: an archived record keeps its first time). */
int api_store_archive(struct api_store *st, enum api_kind kind, const char *id, uint64_t now_ns,
		      struct cr_error *err);

/* Marks id deleted (environments and sessions): the API no longer shows it, but
 * api_store_get(deleted_ok) still finds it for the sessions that use it. */
int api_store_delete(struct api_store *st, enum api_kind kind, const char *id, uint64_t now_ns,
		     struct cr_error *err);

/* At most q->limit records matching q, in q's order. *ret is owned by the caller
 * (api_records_free). */
int api_store_list(struct api_store *st, const struct api_query *q, struct api_record **ret,
		   size_t *ret_n, struct cr_error *err);

void api_record_clear(struct api_record *r);
void api_records_free(struct api_record *v, size_t n);

#endif
