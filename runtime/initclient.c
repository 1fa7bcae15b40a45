/* runtime/initclient: the host's side of a call into a sandbox's corral-init (one request, its
 * response), over the frames of init/frame.c. It never interprets a response beyond its id:
 * what "ok" means is the caller's business. One caller at a time per connection. */
#include <errno.h>
#include <string.h>

#include "corral/clock.h"
#include "corral/initproto.h"

int cr_init_call(int fd, json_t *request, int timeout_ms, json_t **ret_response,
		 struct cr_error *err)
{
	const char *id = json_string_value(json_object_get(request, "id"));
	if (!id)
		return cr_error_set(err, EINVAL, "init request without a string \"id\"");
	if (strlen(id) > CR_INIT_ID_MAX)
		return cr_error_set(err, EINVAL, "init request id longer than %d bytes",
				    CR_INIT_ID_MAX);
	int64_t deadline = timeout_ms < 0 ? -1 : cr_now_ms() + timeout_ms;
	int r = cr_init_send(fd, request, timeout_ms, err);
	if (r < 0)
		return r;
	for (;;) {
		int left = -1;
		if (deadline >= 0) {
			int64_t l = deadline - cr_now_ms();
			left = l < 0 ? 0 : (int)l;
		}
		json_t *msg = NULL;
		r = cr_init_recv(fd, left, &msg, err);
		if (r == -ETIMEDOUT)
			return cr_error_set(err, ETIMEDOUT,
					    "no answer from corral-init to request %s within %d ms",
					    id, timeout_ms);
		if (r < 0)
			return r;
		json_t *got = json_object_get(msg, "id");
		if (json_is_null(got)) {
			const char *why = json_string_value(json_object_get(msg, "error"));
			r = cr_error_set(err, EPROTO, "corral-init refused request %s: %s", id,
					 why ? why : "(no reason given)");
			json_decref(msg);
			return r;
		}
		if (json_is_string(got) && strcmp(json_string_value(got), id) == 0) {
			*ret_response = msg;
			return 0;
		}
		json_decref(msg); /* a late answer to an earlier call */
	}
}
