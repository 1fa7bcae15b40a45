/* tests/model-stream: runs runtime/model's stream parser over standard input (a response body
 * as the Messages API streams it) in chunks of CHUNK bytes (default 7) and prints the assembled
 * message as JSON, or the error on stderr (exit 1). The integration tests compare its message
 * with the TypeScript SDK's finalMessage() for the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "corral/model.h"

int main(int argc, char **argv)
{
	size_t chunk = argc > 1 ? strtoul(argv[1], NULL, 10) : 7;
	if (!chunk)
		chunk = 7;
	struct cr_model_stream *s;
	struct cr_error err;
	if (cr_model_stream_new(NULL, &s, &err) < 0) {
		fprintf(stderr, "model-stream: %s\n", err.msg);
		return 1;
	}
	char buf[65536];
	size_t n;
	int r = 0;
	while (r == 0 && (n = fread(buf, 1, sizeof(buf), stdin)) > 0)
		for (size_t off = 0; r == 0 && off < n; off += chunk)
			r = cr_model_stream_feed(s, buf + off, off + chunk < n ? chunk : n - off,
						 &err);
	if (r == 0)
		r = cr_model_stream_finish(s, &err);
	if (r < 0) {
		fprintf(stderr, "model-stream: %s\n", err.msg);
		cr_model_stream_free(s);
		return 1;
	}
	char *text = json_dumps(cr_model_stream_message(s), JSON_COMPACT);
	puts(text ? text : "null");
	free(text);
	cr_model_stream_free(s);
	return 0;
}
