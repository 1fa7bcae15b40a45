/* util/heap: the C heap's settings for long-lived processes (include/corral/heap.h). */
#include <malloc.h>

#include "corral/heap.h"

void cr_heap_keep(void)
{
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	mallopt(M_TRIM_THRESHOLD, 256 << 20);
}
