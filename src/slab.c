/*
 * slab.c: the memory of the token table. With 100 000 connections the
 * hot path reads one entry and one answer of 130 MB at random; from
 * Kore's pools (4 KB pages, a power of two per piece) nearly every read
 * also missed the TLB. Here pieces come in classes of 64 bytes, cut from
 * 2 MB-aligned chunks advised for transparent huge pages, so the table
 * sits on a few dozen pages. A freed piece waits on its class's list;
 * nothing goes back to the system (the table is as big as what it holds).
 * Larger pieces are plain calloc. Under ASan a free piece is poisoned.
 */

#include <sys/types.h>
#include <sys/mman.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n)	ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n)	ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLAB_POISON(p, n)	((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n)	((void)(p), (void)(n))
#endif

#include "kiln.h"

#define SLAB_HUGE	(2 * 1024 * 1024)
#define SLAB_CHUNK	(4 * SLAB_HUGE)
#define SLAB_CLASSES	(SLAB_MAX / SLAB_ALIGN)

struct slab_piece {
	struct slab_piece	*next;
};

static struct {
	struct slab_piece	*free[SLAB_CLASSES];
	int			nohuge;		/* no MADV_HUGEPAGE */
	u_int8_t		*cur;		/* the chunk being cut */
	size_t			left;
	size_t			mapped;		/* bytes, chunks and maps */
} slab;

static size_t
slab_class(size_t len)
{
	return (len == 0 ? 0 : (len - 1) / SLAB_ALIGN);
}

/*
 * Advise huge pages (on) or not. Where transparent huge pages are on
 * "madvise" with defrag "madvise", a first touch of an advised page may
 * compact memory synchronously: KILN_HUGE_PAGES=0 for a host where that
 * stalls.
 */
void
slab_huge(int on)
{
	slab.nohuge = !on;
}

/* len bytes, zeroed, 2 MB-aligned and advised for huge pages; or NULL. */
void *
slab_map(size_t len)
{
	u_int8_t	*p, *start;
	size_t		total, head;

	len = (len + SLAB_HUGE - 1) & ~((size_t)SLAB_HUGE - 1);
	if (len == 0)
		return (NULL);
	total = len + SLAB_HUGE;
	p = mmap(NULL, total, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return (NULL);

	/* Keep the aligned middle: huge pages need 2 MB alignment. */
	start = (u_int8_t *)(((uintptr_t)p + SLAB_HUGE - 1) &
	    ~((uintptr_t)SLAB_HUGE - 1));
	head = (size_t)(start - p);
	if (head > 0)
		(void)munmap(p, head);
	if (total - head - len > 0)
		(void)munmap(start + len, total - head - len);

	/* Advice only: without THP (or with it off) these are 4 KB pages. */
	if (!slab.nohuge)
		(void)madvise(start, len, MADV_HUGEPAGE);
	slab.mapped += len;

	return (start);
}

/* len bytes, zeroed; NULL only when the system has no memory left. */
void *
slab_alloc(size_t len)
{
	struct slab_piece	*p;
	size_t			c, size;

	if (len > SLAB_MAX)
		return (calloc(1, len));

	c = slab_class(len);
	size = (c + 1) * SLAB_ALIGN;
	if ((p = slab.free[c]) != NULL) {
		SLAB_UNPOISON(p, size);
		slab.free[c] = p->next;
		memset(p, 0, size);
		return (p);
	}

	if (slab.left < size) {
		/* The chunk's tail (under SLAB_MAX) is left unused. */
		if ((slab.cur = slab_map(SLAB_CHUNK)) == NULL) {
			slab.left = 0;
			return (NULL);
		}
		slab.left = SLAB_CHUNK;
	}
	p = (struct slab_piece *)slab.cur;
	slab.cur += size;
	slab.left -= size;

	return (p);
}

/* A piece of slab_alloc(len), len as given then; NULL is ignored. */
void
slab_free(void *ptr, size_t len)
{
	struct slab_piece	*p = ptr;
	size_t			c;

	if (ptr == NULL)
		return;
	if (len > SLAB_MAX) {
		free(ptr);
		return;
	}

	c = slab_class(len);
	p->next = slab.free[c];
	slab.free[c] = p;
	SLAB_POISON((u_int8_t *)p + sizeof(*p),
	    (c + 1) * SLAB_ALIGN - sizeof(*p));
}

/* Bytes mapped for the table so far (chunks and slab_map's maps). */
size_t
slab_mapped(void)
{
	return (slab.mapped);
}
