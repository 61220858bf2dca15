/* SPDX-License-Identifier: GPL-2.0 */
/* The C API this module binds itself (the kernel's rust/bindings has no VMBus). */
#include <linux/hyperv.h>
#include <linux/mm.h>

/* page_to_pfn() is a macro: give bindgen a function to wrap. */
static inline unsigned long az_blob_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}
