/* SPDX-License-Identifier: GPL-2.0 */
/* The C API this module binds itself (the kernel's rust/bindings has no VMBus). */
#include <linux/cred.h>
#include <linux/hyperv.h>
#include <linux/mm.h>
#include <linux/workqueue.h>

/* Macros and static inlines, given bindgen functions to wrap. */
static inline unsigned long az_blob_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

static inline const void *az_blob_current_cred(void)
{
	return current_cred();
}

static inline struct workqueue_struct *az_blob_alloc_workqueue(void)
{
	return alloc_workqueue("hv_azure_blob", WQ_MEM_RECLAIM | WQ_UNBOUND, 0);
}
