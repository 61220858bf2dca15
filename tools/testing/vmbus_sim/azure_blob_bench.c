// SPDX-License-Identifier: GPL-2.0
/*
 * azure_blob_bench: the baseline of the driver-overhead benchmark (test bed
 * only). It binds the Azure Blob device itself and sends the same exchange
 * the user-space benchmark sends through /dev/azure_blob (a 4 KiB request,
 * a 4 KiB response buffer, one GPA-direct packet, the echo handler on the
 * host), straight from the kernel, one at a time, and prints the round trips
 * per second and the p50/p99 latency. The difference to the user-space
 * figures is what the driver adds: the ioctl, copying the struct, pinning,
 * the requestor, the wake-up.
 */
#include <linux/completion.h>
#include <linux/hyperv.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/sort.h>
#include <linux/vmalloc.h>

static unsigned int iterations = 20000;
module_param(iterations, uint, 0444);
MODULE_PARM_DESC(iterations, "round trips to measure");

/* struct az_blob_vsp_request (56 bytes), as the product driver sends it. */
struct bench_vsp_request {
	u32 version, timeout_ms, data_buffer_offset, data_buffer_length;
	u32 data_buffer_valid, operation_type;
	u32 request_buffer_offset, request_buffer_length;
	u32 response_buffer_offset, response_buffer_length;
	u8 transaction_id[16];
} __packed;

struct bench_desc {
	struct vmbus_packet_mpb_array d;
	u64 pfn[2];
} __packed;

struct bench {
	struct hv_device *dev;
	struct page *req, *resp;
	struct completion done;
	u32 status, response_len;
};

static void bench_callback(void *ctx)
{
	struct bench *b = ctx;
	struct vmpacket_descriptor *desc;

	foreach_vmbus_pkt(desc, b->dev->channel) {
		u32 off = desc->offset8 << 3, len = desc->len8 << 3;

		if (desc->type == VM_PKT_COMP && len >= off + 12 &&
		    vmbus_request_addr(b->dev->channel, desc->trans_id) == 1) {
			u32 *r = (u32 *)((u8 *)desc + off);

			b->status = r[1];
			b->response_len = r[2];
			complete(&b->done);
		}
	}
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

static int bench_run(struct bench *b)
{
	struct bench_vsp_request msg = {
		.operation_type = 0x100,
		.request_buffer_offset = 0,
		.request_buffer_length = PAGE_SIZE,
		.response_buffer_offset = PAGE_SIZE,
		.response_buffer_length = PAGE_SIZE,
		.timeout_ms = 30000,
	};
	struct bench_desc desc;
	u64 *lat, start, total;
	unsigned int i;
	int ret = 0;

	lat = vmalloc_array(iterations, sizeof(u64));
	if (!lat)
		return -ENOMEM;
	memset(page_address(b->req), 0x42, PAGE_SIZE);
	start = ktime_get_ns();
	for (i = 0; i < iterations; i++) {
		u64 t0 = ktime_get_ns();

		memset(&desc, 0, sizeof(desc));
		desc.d.rangecount = 1;
		desc.d.range.len = 2 * PAGE_SIZE;
		desc.d.range.offset = 0;
		desc.pfn[0] = page_to_pfn(b->req);
		desc.pfn[1] = page_to_pfn(b->resp);
		reinit_completion(&b->done);
		ret = vmbus_sendpacket_mpb_desc(b->dev->channel, &desc.d, sizeof(desc),
						&msg, sizeof(msg), 1);
		if (ret)
			break;
		if (!wait_for_completion_timeout(&b->done, 10 * HZ)) {
			ret = -ETIMEDOUT;
			break;
		}
		if (b->status || b->response_len != PAGE_SIZE) {
			ret = -EIO;
			break;
		}
		lat[i] = ktime_get_ns() - t0;
	}
	total = ktime_get_ns() - start;
	if (!ret) {
		sort(lat, iterations, sizeof(u64), cmp_u64, NULL);
		pr_info("BENCH kernel: %u round trips of 4 KiB, %llu per second, p50 %llu us, p99 %llu us\n",
			iterations, (u64)iterations * NSEC_PER_SEC / total,
			lat[iterations / 2] / 1000, lat[(u64)iterations * 99 / 100] / 1000);
	} else {
		pr_err("BENCH kernel: failed at round trip %u: %d\n", i, ret);
	}
	vfree(lat);
	return ret;
}

static int bench_probe(struct hv_device *dev, const struct hv_vmbus_device_id *id)
{
	struct bench *b;
	int ret;

	b = kzalloc(sizeof(*b), GFP_KERNEL);
	if (!b)
		return -ENOMEM;
	b->dev = dev;
	init_completion(&b->done);
	b->req = alloc_page(GFP_KERNEL);
	b->resp = alloc_page(GFP_KERNEL);
	if (!b->req || !b->resp) {
		ret = -ENOMEM;
		goto free;
	}
	/* Transaction ids from the requestor, as the product driver uses them. */
	dev->channel->rqstor_size = 16;
	dev->channel->next_request_id_callback = vmbus_next_request_id;
	dev->channel->request_addr_callback = vmbus_request_addr;
	ret = vmbus_open(dev->channel, 128 * 1024, 128 * 1024, NULL, 0, bench_callback, b);
	if (ret)
		goto free;
	hv_set_drvdata(dev, b);
	ret = bench_run(b);
	if (ret) {
		vmbus_close(dev->channel);
		goto free;
	}
	return 0;
free:
	if (b->req)
		__free_page(b->req);
	if (b->resp)
		__free_page(b->resp);
	kfree(b);
	return ret;
}

static void bench_remove(struct hv_device *dev)
{
	struct bench *b = hv_get_drvdata(dev);

	vmbus_close(dev->channel);
	__free_page(b->req);
	__free_page(b->resp);
	kfree(b);
}

static const struct hv_vmbus_device_id bench_ids[] = {
	{ .guid = GUID_INIT(0x0590b792, 0xdb64, 0x45cc, 0x81, 0xdb,
			    0xb8, 0xd7, 0x0c, 0x57, 0x7c, 0x9e) },
	{ },
};

static struct hv_driver bench_driver = {
	.name = "azure_blob_bench",
	.id_table = bench_ids,
	.probe = bench_probe,
	.remove = bench_remove,
};

static int __init bench_init(void)
{
	return vmbus_driver_register(&bench_driver);
}

static void __exit bench_exit(void)
{
	vmbus_driver_unregister(&bench_driver);
}

module_init(bench_init);
module_exit(bench_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Baseline of the hv_azure_blob driver-overhead benchmark (test bed only)");
