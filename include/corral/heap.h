/* util/heap: how corral's long-lived processes use the C heap. A brain's wake of a long session
 * allocates a few megabytes (the events, the request) and frees them all; glibc's defaults hand
 * that memory back to the kernel at once (large blocks are mmap'ed, a free top is trimmed), so
 * the next wake faults every page in again: on a VM, tens of microseconds a page, more than the
 * wake's own work. */
#ifndef CORRAL_HEAP_H
#define CORRAL_HEAP_H

/* Keeps freed memory for reuse: blocks below 32 MiB come from the heap rather than their own
 * mappings, and the heap is trimmed only once 256 MiB at its top are free. For corrald, the
 * workers, and a benchmark that wakes sessions in its own process. Call before threads start. */
void cr_heap_keep(void);

#endif
