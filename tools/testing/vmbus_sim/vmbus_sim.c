// SPDX-License-Identifier: GPL-2.0
/*
 * vmbus_sim: a simulated VMBus for the hv_azure_blob test bed.
 *
 * Real VMBus needs Hyper-V (or KVM's Hyper-V enlightenments), neither of
 * which can run here, so this module stands in for hv_vmbus in a QEMU guest:
 *
 *  - it registers the bus type "vmbus" and exports the part of hv_vmbus's
 *    client API that VMBus drivers call, with the same names and signatures,
 *    so a driver module built against the real hv_vmbus loads unchanged on it;
 *  - each channel's two rings live in guest RAM in the real VMBus layout
 *    (struct hv_ring_buffer control page + data pages, packets with the
 *    8-byte trailer, GPA-direct packets, the requestor's transaction ids,
 *    the interrupt_mask / pending_send_sz signalling rules);
 *  - the host is a userspace process on the other end of an ivshmem-doorbell
 *    PCI device: it reads and writes the rings and data pages by guest
 *    physical address, and control messages (offer, rescind, open, close) go
 *    through the device's shared memory (vmbus_sim_shm.h documents them).
 */
#include <linux/bitmap.h>
#include <linux/debugfs.h>
#include <linux/hyperv.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/uio.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "vmbus_sim_shm.h"

#define IVSHMEM_REG_IVPOSITION	8
#define IVSHMEM_REG_DOORBELL	12
#define SIM_PKT_BUFFER_SIZE	4096	/* as VMBUS_DEFAULT_MAX_PKT_SIZE */
#define SIM_OPEN_TIMEOUT	(10 * HZ)
#define SIM_CLOSE_TIMEOUT	(10 * HZ)

struct sim_chan {
	unsigned int index;
	struct hv_device *hdev;		/* registered device, or NULL */
	struct vmbus_channel *channel;	/* hdev->channel */
	struct page *ring_block;	/* send ring pages, then receive ring pages */
	unsigned int ring_order;
	bool open;			/* rings attached; irq may schedule callbacks */
	u32 offer_seq_seen;
};

struct sim_bus {
	struct pci_dev *pdev;
	void __iomem *regs;
	struct vmbus_sim_shm __iomem *shm;
	struct mutex scan_lock;		/* offers and rescinds */
	struct mutex open_lock;		/* opens and closes */
	spinlock_t irq_lock;		/* sim_chan.open vs the channel interrupts */
	struct work_struct scan_work;
	wait_queue_head_t ctl_wq;
	bool removing;
	struct dentry *debugfs;
	struct sim_chan chan[VMBUS_SIM_MAX_CHANNELS];
};

static struct sim_bus *sim;	/* the one ivshmem device we drive */

static u32 shm_rd(const void __iomem *field)
{
	return ioread32(field);
}

static void ring_host(struct sim_bus *bus, u32 vector)
{
	u32 peer = ioread32(&bus->shm->host_peer);

	iowrite32((peer << 16) | vector, bus->regs + IVSHMEM_REG_DOORBELL);
}

/* ---- the bus ------------------------------------------------------------ */

static const struct hv_vmbus_device_id *sim_get_id(const struct hv_driver *drv,
						   const struct hv_device *dev)
{
	const struct hv_vmbus_device_id *id = drv->id_table;

	if (!id)
		return NULL;
	for (; !guid_is_null(&id->guid); id++)
		if (guid_equal(&id->guid, &dev->dev_type))
			return id;
	return NULL;
}

static int sim_match(struct device *device, const struct device_driver *driver)
{
	return sim_get_id(drv_to_hv_drv(driver), device_to_hv_device(device)) != NULL;
}

static int sim_probe(struct device *device)
{
	struct hv_driver *drv = drv_to_hv_drv(device->driver);
	struct hv_device *dev = device_to_hv_device(device);
	const struct hv_vmbus_device_id *id = sim_get_id(drv, dev);

	if (!drv->probe || !id)
		return -ENODEV;
	return drv->probe(dev, id);
}

static void sim_remove(struct device *device)
{
	struct hv_device *dev = device_to_hv_device(device);

	if (device->driver) {
		struct hv_driver *drv = drv_to_hv_drv(device->driver);

		if (drv->remove)
			drv->remove(dev);
	}
}

static void sim_shutdown(struct device *device)
{
	struct hv_device *dev = device_to_hv_device(device);

	if (device->driver) {
		struct hv_driver *drv = drv_to_hv_drv(device->driver);

		if (drv->shutdown)
			drv->shutdown(dev);
	}
}

/* The same MODALIAS as hv_vmbus, so udev and modprobe find the driver. */
static int sim_uevent(const struct device *device, struct kobj_uevent_env *env)
{
	const struct hv_device *dev = device_to_hv_device(device);

	return add_uevent_var(env, "MODALIAS=vmbus:%*phN", UUID_SIZE, &dev->dev_type);
}

static const struct bus_type sim_bus_type = {
	.name = "vmbus",
	.match = sim_match,
	.uevent = sim_uevent,
	.probe = sim_probe,
	.remove = sim_remove,
	.shutdown = sim_shutdown,
};

int __vmbus_driver_register(struct hv_driver *hv_driver, struct module *owner,
			    const char *mod_name)
{
	hv_driver->driver.name = hv_driver->name;
	hv_driver->driver.owner = owner;
	hv_driver->driver.mod_name = mod_name;
	hv_driver->driver.bus = &sim_bus_type;
	spin_lock_init(&hv_driver->dynids.lock);
	INIT_LIST_HEAD(&hv_driver->dynids.list);
	return driver_register(&hv_driver->driver);
}
EXPORT_SYMBOL_GPL(__vmbus_driver_register);

void vmbus_driver_unregister(struct hv_driver *hv_driver)
{
	driver_unregister(&hv_driver->driver);
}
EXPORT_SYMBOL_GPL(vmbus_driver_unregister);

void vmbus_set_chn_rescind_callback(struct vmbus_channel *channel,
				    void (*chn_rescind_cb)(struct vmbus_channel *))
{
	channel->chn_rescind_callback = chn_rescind_cb;
}
EXPORT_SYMBOL_GPL(vmbus_set_chn_rescind_callback);

/* ---- the requestor: transaction ids, as hv_vmbus hands them out --------- */

static int sim_alloc_requestor(struct vmbus_requestor *rqstor, u32 size)
{
	u32 i;

	rqstor->req_arr = kcalloc(size, sizeof(u64), GFP_KERNEL);
	if (!rqstor->req_arr)
		return -ENOMEM;
	rqstor->req_bitmap = bitmap_zalloc(size, GFP_KERNEL);
	if (!rqstor->req_bitmap) {
		kfree(rqstor->req_arr);
		rqstor->req_arr = NULL;
		return -ENOMEM;
	}
	/* Free slots form a list through req_arr; size terminates it. */
	for (i = 0; i < size; i++)
		rqstor->req_arr[i] = i + 1;
	rqstor->size = size;
	rqstor->next_request_id = 0;
	spin_lock_init(&rqstor->req_lock);
	return 0;
}

static void sim_free_requestor(struct vmbus_requestor *rqstor)
{
	kfree(rqstor->req_arr);
	bitmap_free(rqstor->req_bitmap);
	rqstor->req_arr = NULL;
	rqstor->req_bitmap = NULL;
	rqstor->size = 0;
}

u64 vmbus_next_request_id(struct vmbus_channel *channel, u64 rqst_addr)
{
	struct vmbus_requestor *rqstor = &channel->requestor;
	unsigned long flags;
	u64 slot;

	if (!channel->rqstor_size || !rqstor->req_arr)
		return VMBUS_NO_RQSTOR;
	spin_lock_irqsave(&rqstor->req_lock, flags);
	slot = rqstor->next_request_id;
	if (slot >= rqstor->size) {
		spin_unlock_irqrestore(&rqstor->req_lock, flags);
		return VMBUS_RQST_ERROR;
	}
	rqstor->next_request_id = rqstor->req_arr[slot];
	rqstor->req_arr[slot] = rqst_addr;
	__set_bit(slot, rqstor->req_bitmap);
	spin_unlock_irqrestore(&rqstor->req_lock, flags);
	/* Id 0 is reserved for unsolicited host messages. */
	return slot + 1;
}
EXPORT_SYMBOL_GPL(vmbus_next_request_id);

u64 __vmbus_request_addr_match(struct vmbus_channel *channel, u64 trans_id,
			       u64 rqst_addr)
{
	struct vmbus_requestor *rqstor = &channel->requestor;
	u64 slot, addr;

	if (!channel->rqstor_size || !rqstor->req_arr)
		return VMBUS_NO_RQSTOR;
	if (!trans_id)
		return VMBUS_RQST_ERROR;
	slot = trans_id - 1;
	if (slot >= rqstor->size || !test_bit(slot, rqstor->req_bitmap))
		return VMBUS_RQST_ERROR;
	addr = rqstor->req_arr[slot];
	if (rqst_addr == VMBUS_RQST_ADDR_ANY || addr == rqst_addr) {
		rqstor->req_arr[slot] = rqstor->next_request_id;
		rqstor->next_request_id = slot;
		__clear_bit(slot, rqstor->req_bitmap);
	}
	return addr;
}
EXPORT_SYMBOL_GPL(__vmbus_request_addr_match);

u64 vmbus_request_addr_match(struct vmbus_channel *channel, u64 trans_id,
			     u64 rqst_addr)
{
	unsigned long flags;
	u64 addr;

	spin_lock_irqsave(&channel->requestor.req_lock, flags);
	addr = __vmbus_request_addr_match(channel, trans_id, rqst_addr);
	spin_unlock_irqrestore(&channel->requestor.req_lock, flags);
	return addr;
}
EXPORT_SYMBOL_GPL(vmbus_request_addr_match);

u64 vmbus_request_addr(struct vmbus_channel *channel, u64 trans_id)
{
	return vmbus_request_addr_match(channel, trans_id, VMBUS_RQST_ADDR_ANY);
}
EXPORT_SYMBOL_GPL(vmbus_request_addr);

/* ---- rings -------------------------------------------------------------- */

/* Maps a ring (control page + data pages) with the data pages twice, so a
 * packet that wraps can be accessed contiguously, as hv_ringbuffer_init does. */
static int sim_ring_init(struct hv_ring_buffer_info *rbi, struct page *pages, u32 npages)
{
	struct page **wrap;
	u32 i;

	wrap = kcalloc(npages * 2 - 1, sizeof(*wrap), GFP_KERNEL);
	if (!wrap)
		return -ENOMEM;
	wrap[0] = pages;
	for (i = 0; i < 2 * (npages - 1); i++)
		wrap[i + 1] = &pages[i % (npages - 1) + 1];
	rbi->ring_buffer = vmap(wrap, npages * 2 - 1, VM_MAP, PAGE_KERNEL);
	kfree(wrap);
	if (!rbi->ring_buffer)
		return -ENOMEM;
	rbi->pkt_buffer = kzalloc(SIM_PKT_BUFFER_SIZE, GFP_KERNEL);
	if (!rbi->pkt_buffer) {
		vunmap(rbi->ring_buffer);
		rbi->ring_buffer = NULL;
		return -ENOMEM;
	}
	rbi->pkt_buffer_size = SIM_PKT_BUFFER_SIZE;
	rbi->ring_buffer->read_index = 0;
	rbi->ring_buffer->write_index = 0;
	rbi->ring_buffer->feature_bits.value = 1;	/* feat_pending_send_sz */
	rbi->ring_size = npages << PAGE_SHIFT;
	rbi->ring_datasize = rbi->ring_size - sizeof(struct hv_ring_buffer);
	rbi->priv_read_index = 0;
	spin_lock_init(&rbi->ring_lock);
	return 0;
}

static void sim_ring_cleanup(struct hv_ring_buffer_info *rbi)
{
	if (rbi->ring_buffer)
		vunmap(rbi->ring_buffer);
	kfree(rbi->pkt_buffer);
	rbi->ring_buffer = NULL;
	rbi->pkt_buffer = NULL;
	rbi->pkt_buffer_size = 0;
}

static struct sim_chan *sim_chan_of(struct vmbus_channel *channel)
{
	u32 relid = channel->offermsg.child_relid;

	if (!sim || relid == 0 || relid > VMBUS_SIM_MAX_CHANNELS)
		return NULL;
	if (sim->chan[relid - 1].channel != channel)
		return NULL;
	return &sim->chan[relid - 1];
}

static void sim_signal_host(struct vmbus_channel *channel)
{
	struct sim_chan *c = sim_chan_of(channel);

	if (c)
		ring_host(sim, 1 + c->index);
}

static int sim_ringbuffer_write(struct vmbus_channel *channel,
				const struct kvec *kv_list, u32 kv_count, u64 requestid)
{
	struct hv_ring_buffer_info *rbi = &channel->outbound;
	struct vmpacket_descriptor *desc = kv_list[0].iov_base;
	u32 total = sizeof(u64), avail, read_index, old_write, next, i;
	u64 rqst_id = VMBUS_NO_RQSTOR, prev;
	unsigned long flags;
	bool signal = false;

	if (READ_ONCE(channel->rescind))
		return -ENODEV;
	for (i = 0; i < kv_count; i++)
		total += kv_list[i].iov_len;

	spin_lock_irqsave(&rbi->ring_lock, flags);
	if (!rbi->ring_buffer) {
		spin_unlock_irqrestore(&rbi->ring_lock, flags);
		return -ENODEV;
	}
	read_index = READ_ONCE(rbi->ring_buffer->read_index);
	old_write = READ_ONCE(rbi->ring_buffer->write_index);
	if (read_index >= rbi->ring_datasize || old_write >= rbi->ring_datasize) {
		spin_unlock_irqrestore(&rbi->ring_lock, flags);
		pr_err_ratelimited("vmbus_sim: outbound ring indices out of range (read %u write %u)\n",
				   read_index, old_write);
		return -EIO;
	}
	avail = old_write >= read_index ? rbi->ring_datasize - (old_write - read_index) :
					  read_index - old_write;
	if (avail <= total) {
		spin_unlock_irqrestore(&rbi->ring_lock, flags);
		return -EAGAIN;
	}
	next = old_write;
	for (i = 0; i < kv_count; i++) {
		memcpy((u8 *)rbi->ring_buffer->buffer + next, kv_list[i].iov_base,
		       kv_list[i].iov_len);
		next += kv_list[i].iov_len;
		if (next >= rbi->ring_datasize)
			next -= rbi->ring_datasize;
	}
	/* The id is taken once the data is in the ring, as hv_vmbus does. */
	if (desc->flags == VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED &&
	    channel->next_request_id_callback) {
		rqst_id = channel->next_request_id_callback(channel, requestid);
		if (rqst_id == VMBUS_RQST_ERROR) {
			spin_unlock_irqrestore(&rbi->ring_lock, flags);
			return -EAGAIN;
		}
	}
	desc = (struct vmpacket_descriptor *)((u8 *)rbi->ring_buffer->buffer + old_write);
	WRITE_ONCE(desc->trans_id, rqst_id == VMBUS_NO_RQSTOR ? requestid : rqst_id);
	prev = (u64)old_write << 32;
	memcpy((u8 *)rbi->ring_buffer->buffer + next, &prev, sizeof(prev));
	next += sizeof(prev);
	if (next >= rbi->ring_datasize)
		next -= rbi->ring_datasize;
	virt_mb();
	WRITE_ONCE(rbi->ring_buffer->write_index, next);
	spin_unlock_irqrestore(&rbi->ring_lock, flags);

	/* Signal only when the ring went from empty to non-empty. */
	virt_mb();
	if (!READ_ONCE(rbi->ring_buffer->interrupt_mask)) {
		virt_rmb();
		if (old_write == READ_ONCE(rbi->ring_buffer->read_index))
			signal = true;
	}
	if (signal)
		sim_signal_host(channel);

	if (READ_ONCE(channel->rescind)) {
		if (rqst_id != VMBUS_NO_RQSTOR && channel->request_addr_callback)
			channel->request_addr_callback(channel, rqst_id);
		return -ENODEV;
	}
	return 0;
}

int vmbus_sendpacket_mpb_desc(struct vmbus_channel *channel,
			      struct vmbus_packet_mpb_array *desc, u32 desc_size,
			      void *buffer, u32 bufferlen, u64 requestid)
{
	u32 packetlen = desc_size + bufferlen;
	u32 aligned = ALIGN(packetlen, sizeof(u64));
	u64 pad = 0;
	struct kvec kv[3];

	desc->type = VM_PKT_DATA_USING_GPA_DIRECT;
	desc->flags = VMBUS_DATA_PACKET_FLAG_COMPLETION_REQUESTED;
	desc->dataoffset8 = desc_size >> 3;
	desc->length8 = (u16)(aligned >> 3);
	desc->transactionid = VMBUS_RQST_ERROR;	/* set by the ring write */
	desc->reserved = 0;
	kv[0].iov_base = desc;
	kv[0].iov_len = desc_size;
	kv[1].iov_base = buffer;
	kv[1].iov_len = bufferlen;
	kv[2].iov_base = &pad;
	kv[2].iov_len = aligned - packetlen;
	return sim_ringbuffer_write(channel, kv, 3, requestid);
}
EXPORT_SYMBOL_GPL(vmbus_sendpacket_mpb_desc);

static u32 sim_iter_avail(const struct hv_ring_buffer_info *rbi)
{
	u32 priv = rbi->priv_read_index;
	u32 write = virt_load_acquire(&rbi->ring_buffer->write_index);

	if (write >= priv)
		return write - priv;
	return rbi->ring_datasize - priv + write;
}

/* Copies the next packet out of the ring (the host may change the ring at any
 * time) and returns the copy, or NULL when the ring is empty. */
struct vmpacket_descriptor *hv_pkt_iter_first(struct vmbus_channel *channel)
{
	struct hv_ring_buffer_info *rbi = &channel->inbound;
	struct vmpacket_descriptor *desc;
	u32 avail, len, off;

	if (!rbi->ring_buffer || rbi->priv_read_index >= rbi->ring_datasize)
		return NULL;
	avail = sim_iter_avail(rbi);
	if (avail < sizeof(struct vmpacket_descriptor) || avail > rbi->ring_datasize)
		return NULL;
	avail = min(rbi->pkt_buffer_size, avail);
	desc = (struct vmpacket_descriptor *)((u8 *)rbi->ring_buffer->buffer + rbi->priv_read_index);
	len = READ_ONCE(desc->len8) << 3;
	off = READ_ONCE(desc->offset8) << 3;
	if (len < sizeof(struct vmpacket_descriptor) || len > avail)
		len = avail;
	if (off < sizeof(struct vmpacket_descriptor) || off > len)
		off = sizeof(struct vmpacket_descriptor);
	memcpy(rbi->pkt_buffer, desc, len);
	desc = rbi->pkt_buffer;
	/* The copy is what the caller sees: make it self-consistent. */
	desc->len8 = len >> 3;
	desc->offset8 = off >> 3;
	return desc;
}
EXPORT_SYMBOL_GPL(hv_pkt_iter_first);

struct vmpacket_descriptor *__hv_pkt_iter_next(struct vmbus_channel *channel,
					       const struct vmpacket_descriptor *desc)
{
	struct hv_ring_buffer_info *rbi = &channel->inbound;

	rbi->priv_read_index += (desc->len8 << 3) + sizeof(u64);
	if (rbi->priv_read_index >= rbi->ring_datasize)
		rbi->priv_read_index -= rbi->ring_datasize;
	return hv_pkt_iter_first(channel);
}
EXPORT_SYMBOL_GPL(__hv_pkt_iter_next);

void hv_pkt_iter_close(struct vmbus_channel *channel)
{
	struct hv_ring_buffer_info *rbi = &channel->inbound;
	u32 start, bytes_read, pending, write_space;

	if (!rbi->ring_buffer)
		return;
	virt_rmb();
	start = rbi->ring_buffer->read_index;
	rbi->ring_buffer->read_index = rbi->priv_read_index;
	if (!rbi->ring_buffer->feature_bits.feat_pending_send_sz)
		return;
	virt_mb();
	pending = READ_ONCE(rbi->ring_buffer->pending_send_sz);
	if (!pending)
		return;
	virt_rmb();
	write_space = hv_get_bytes_to_write(rbi);
	bytes_read = rbi->priv_read_index >= start ? rbi->priv_read_index - start :
			rbi->ring_datasize - start + rbi->priv_read_index;
	/* Signal the host only if this read made room it is waiting for. */
	if (write_space <= pending || write_space - bytes_read > pending)
		return;
	sim_signal_host(channel);
}
EXPORT_SYMBOL_GPL(hv_pkt_iter_close);

/* The channel's tasklet, as hv_vmbus's vmbus_on_event in batched mode. */
static void sim_on_event(unsigned long data)
{
	struct vmbus_channel *channel = (void *)data;
	void (*cb)(void *context) = READ_ONCE(channel->onchannel_callback);

	if (!cb)
		return;
	cb(channel->channel_callback_context);
	if (hv_end_read(&channel->inbound) == 0)
		return;
	hv_begin_read(&channel->inbound);
	tasklet_schedule(&channel->callback_event);
}

/* ---- open and close ----------------------------------------------------- */

static bool sim_host_acked(struct sim_chan *c, u32 seq)
{
	return shm_rd(&sim->shm->chan[c->index].open_ack) == seq;
}

int vmbus_open(struct vmbus_channel *channel, u32 send_ringbuffer_size,
	       u32 recv_ringbuffer_size, void *userdata, u32 userdatalen,
	       void (*onchannel_callback)(void *context), void *context)
{
	struct sim_chan *c = sim_chan_of(channel);
	struct vmbus_sim_channel __iomem *sc;
	u32 send_pages, recv_pages, total, i, seq, status;
	unsigned long flags;
	int ret;

	if (!c)
		return -ENODEV;
	if (!PAGE_ALIGNED(send_ringbuffer_size) || !PAGE_ALIGNED(recv_ringbuffer_size))
		return -EINVAL;
	send_pages = send_ringbuffer_size >> PAGE_SHIFT;
	recv_pages = recv_ringbuffer_size >> PAGE_SHIFT;
	total = send_pages + recv_pages;
	if (send_pages < 2 || recv_pages < 2 || total > VMBUS_SIM_MAX_RING_PFNS)
		return -EINVAL;

	mutex_lock(&sim->open_lock);
	if (c->open || c->ring_block) {
		ret = -EBUSY;
		goto out_unlock;
	}
	c->ring_order = get_order(total << PAGE_SHIFT);
	c->ring_block = alloc_pages(GFP_KERNEL | __GFP_ZERO, c->ring_order);
	if (!c->ring_block) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	ret = sim_ring_init(&channel->outbound, c->ring_block, send_pages);
	if (ret)
		goto out_free_pages;
	ret = sim_ring_init(&channel->inbound, c->ring_block + send_pages, recv_pages);
	if (ret)
		goto out_cleanup_out;
	if (channel->rqstor_size) {
		ret = sim_alloc_requestor(&channel->requestor, channel->rqstor_size);
		if (ret)
			goto out_cleanup_in;
	}
	channel->onchannel_callback = onchannel_callback;
	channel->channel_callback_context = context;

	/* Publish the ring pages (the GPADL) and ask the host to open. */
	sc = &sim->shm->chan[c->index];
	for (i = 0; i < total; i++)
		writeq(page_to_pfn(c->ring_block + i), &sc->ring_pfn[i]);
	iowrite32(send_pages, &sc->send_pages);
	iowrite32(recv_pages, &sc->recv_pages);
	iowrite32(VMBUS_SIM_STATE_OPEN, &sc->state);
	seq = shm_rd(&sc->open_seq) + 1;
	wmb();
	iowrite32(seq, &sc->open_seq);
	ring_host(sim, VMBUS_SIM_VEC_CONTROL);
	if (!wait_event_timeout(sim->ctl_wq, sim_host_acked(c, seq), SIM_OPEN_TIMEOUT)) {
		/* The host may yet attach: the ring pages stay allocated. */
		dev_err(&sim->pdev->dev, "channel %u: the host did not answer the open\n", c->index);
		iowrite32(VMBUS_SIM_STATE_CLOSED, &sc->state);
		ret = -ETIMEDOUT;
		goto out_keep_rings;
	}
	status = shm_rd(&sc->host_status);
	if (status) {
		dev_err(&sim->pdev->dev, "channel %u: the host refused the open (%u)\n",
			c->index, status);
		iowrite32(VMBUS_SIM_STATE_CLOSED, &sc->state);
		ret = -EIO;
		goto out_keep_rings;
	}
	channel->state = CHANNEL_OPENED_STATE;
	spin_lock_irqsave(&sim->irq_lock, flags);
	c->open = true;
	spin_unlock_irqrestore(&sim->irq_lock, flags);
	mutex_unlock(&sim->open_lock);
	return 0;

out_keep_rings:
	channel->onchannel_callback = NULL;
	if (channel->rqstor_size)
		sim_free_requestor(&channel->requestor);
	mutex_unlock(&sim->open_lock);
	return ret;
out_cleanup_in:
	sim_ring_cleanup(&channel->inbound);
out_cleanup_out:
	sim_ring_cleanup(&channel->outbound);
out_free_pages:
	__free_pages(c->ring_block, c->ring_order);
	c->ring_block = NULL;
out_unlock:
	mutex_unlock(&sim->open_lock);
	return ret;
}
EXPORT_SYMBOL_GPL(vmbus_open);

void vmbus_close(struct vmbus_channel *channel)
{
	struct sim_chan *c = sim_chan_of(channel);
	struct vmbus_sim_channel __iomem *sc;
	unsigned long flags;
	bool acked;
	u32 seq;

	if (!c)
		return;
	mutex_lock(&sim->open_lock);
	if (!c->open) {
		mutex_unlock(&sim->open_lock);
		return;
	}
	spin_lock_irqsave(&sim->irq_lock, flags);
	c->open = false;
	spin_unlock_irqrestore(&sim->irq_lock, flags);
	tasklet_kill(&channel->callback_event);
	WRITE_ONCE(channel->onchannel_callback, NULL);
	channel->state = CHANNEL_OPEN_STATE;

	sc = &sim->shm->chan[c->index];
	iowrite32(VMBUS_SIM_STATE_CLOSED, &sc->state);
	seq = shm_rd(&sc->open_seq) + 1;
	wmb();
	iowrite32(seq, &sc->open_seq);
	ring_host(sim, VMBUS_SIM_VEC_CONTROL);
	acked = wait_event_timeout(sim->ctl_wq, sim_host_acked(c, seq), SIM_CLOSE_TIMEOUT);

	if (acked) {
		struct hv_ring_buffer_info detached = {};

		/* Writers check ring_buffer under ring_lock: detach, then free. */
		spin_lock_irqsave(&channel->outbound.ring_lock, flags);
		detached.ring_buffer = channel->outbound.ring_buffer;
		detached.pkt_buffer = channel->outbound.pkt_buffer;
		channel->outbound.ring_buffer = NULL;
		channel->outbound.pkt_buffer = NULL;
		spin_unlock_irqrestore(&channel->outbound.ring_lock, flags);
		sim_ring_cleanup(&detached);
		sim_ring_cleanup(&channel->inbound);
		__free_pages(c->ring_block, c->ring_order);
		c->ring_block = NULL;
	} else {
		/* Never free memory the host may still write. */
		dev_err(&sim->pdev->dev,
			"channel %u: the host did not acknowledge the close; its ring memory is kept\n",
			c->index);
	}
	if (channel->rqstor_size)
		sim_free_requestor(&channel->requestor);
	mutex_unlock(&sim->open_lock);
}
EXPORT_SYMBOL_GPL(vmbus_close);

/* ---- offers and rescinds ------------------------------------------------ */

static void sim_dev_release(struct device *device)
{
	struct hv_device *hdev = device_to_hv_device(device);

	kfree(hdev->channel);
	kfree(hdev);
}

static void sim_add_device(struct sim_chan *c)
{
	struct vmbus_sim_channel __iomem *sc = &sim->shm->chan[c->index];
	struct vmbus_channel *channel;
	struct hv_device *hdev;
	int ret;

	hdev = kzalloc(sizeof(*hdev), GFP_KERNEL);
	channel = kzalloc(sizeof(*channel), GFP_KERNEL);
	if (!hdev || !channel) {
		kfree(hdev);
		kfree(channel);
		return;
	}
	memcpy_fromio(&hdev->dev_type, sc->if_type, sizeof(guid_t));
	memcpy_fromio(&hdev->dev_instance, sc->if_instance, sizeof(guid_t));
	channel->offermsg.offer.if_type = hdev->dev_type;
	channel->offermsg.offer.if_instance = hdev->dev_instance;
	channel->offermsg.child_relid = c->index + 1;
	channel->device_obj = hdev;
	channel->state = CHANNEL_OFFER_STATE;
	channel->callback_mode = HV_CALL_BATCHED;
	spin_lock_init(&channel->sched_lock);
	INIT_LIST_HEAD(&channel->sc_list);
	mutex_init(&channel->inbound.ring_buffer_mutex);
	mutex_init(&channel->outbound.ring_buffer_mutex);
	spin_lock_init(&channel->inbound.ring_lock);
	spin_lock_init(&channel->outbound.ring_lock);
	tasklet_init(&channel->callback_event, sim_on_event, (unsigned long)channel);

	hdev->channel = channel;
	hdev->device.bus = &sim_bus_type;
	hdev->device.parent = &sim->pdev->dev;
	hdev->device.release = sim_dev_release;
	dev_set_name(&hdev->device, "%pUl", &hdev->dev_instance);
	c->channel = channel;
	c->hdev = hdev;
	ret = device_register(&hdev->device);
	if (ret) {
		dev_err(&sim->pdev->dev, "channel %u: device_register failed (%d)\n", c->index, ret);
		c->channel = NULL;
		c->hdev = NULL;
		put_device(&hdev->device);
	}
}

static void sim_remove_device(struct sim_chan *c)
{
	struct vmbus_channel *channel = c->channel;
	struct hv_device *hdev = c->hdev;

	if (!hdev)
		return;
	WRITE_ONCE(channel->rescind, true);
	if (channel->chn_rescind_callback)
		channel->chn_rescind_callback(channel);
	/* Unbinds the driver (its remove closes the channel), then frees. */
	device_unregister(&hdev->device);
	c->hdev = NULL;
	c->channel = NULL;
}

static void sim_scan(struct work_struct *work)
{
	struct sim_bus *bus = container_of(work, struct sim_bus, scan_work);
	unsigned int i;

	mutex_lock(&bus->scan_lock);
	if (bus->removing || shm_rd(&bus->shm->magic) != VMBUS_SIM_MAGIC) {
		mutex_unlock(&bus->scan_lock);
		return;
	}
	for (i = 0; i < VMBUS_SIM_MAX_CHANNELS; i++) {
		struct sim_chan *c = &bus->chan[i];
		u32 offered = shm_rd(&bus->shm->chan[i].offered);
		u32 seq = shm_rd(&bus->shm->chan[i].offer_seq);

		/* A rescind and a new offer may both have happened since the last look. */
		if (c->hdev && (!offered || seq != c->offer_seq_seen))
			sim_remove_device(c);
		if (offered && !c->hdev && !bus->removing)
			sim_add_device(c);
		c->offer_seq_seen = seq;
	}
	mutex_unlock(&bus->scan_lock);
}

/* ---- power management, driven by hand -------------------------------------- */

/*
 * Writing "suspend" or "resume" to <debugfs>/vmbus_sim/pm calls the bound
 * drivers' suspend or resume callbacks, as hv_vmbus does around hibernation
 * (the test bed cannot hibernate the guest itself).
 */
static ssize_t sim_pm_write(struct file *file, const char __user *ubuf,
			    size_t len, loff_t *ppos)
{
	struct sim_bus *bus = file->private_data;
	bool suspend;
	char cmd[16];
	unsigned int i;
	int ret = 0;

	if (len == 0 || len >= sizeof(cmd))
		return -EINVAL;
	if (copy_from_user(cmd, ubuf, len))
		return -EFAULT;
	cmd[len] = '\0';
	if (sysfs_streq(cmd, "suspend"))
		suspend = true;
	else if (sysfs_streq(cmd, "resume"))
		suspend = false;
	else
		return -EINVAL;

	mutex_lock(&bus->scan_lock);
	for (i = 0; i < VMBUS_SIM_MAX_CHANNELS && !ret; i++) {
		struct hv_device *hdev = bus->chan[i].hdev;
		struct hv_driver *drv;

		if (!hdev)
			continue;
		device_lock(&hdev->device);
		if (hdev->device.driver) {
			drv = drv_to_hv_drv(hdev->device.driver);
			if (suspend && drv->suspend)
				ret = drv->suspend(hdev);
			else if (!suspend && drv->resume)
				ret = drv->resume(hdev);
		}
		device_unlock(&hdev->device);
	}
	mutex_unlock(&bus->scan_lock);
	return ret ? ret : len;
}

static const struct file_operations sim_pm_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = sim_pm_write,
};

/* ---- the ivshmem device --------------------------------------------------- */

static irqreturn_t sim_ctl_irq(int irq, void *arg)
{
	struct sim_bus *bus = arg;

	wake_up_all(&bus->ctl_wq);
	if (!READ_ONCE(bus->removing))
		schedule_work(&bus->scan_work);
	return IRQ_HANDLED;
}

static irqreturn_t sim_chan_irq(int irq, void *arg)
{
	struct sim_chan *c = arg;
	unsigned long flags;

	spin_lock_irqsave(&sim->irq_lock, flags);
	if (c->open) {
		hv_begin_read(&c->channel->inbound);
		tasklet_schedule(&c->channel->callback_event);
	}
	spin_unlock_irqrestore(&sim->irq_lock, flags);
	return IRQ_HANDLED;
}

static int sim_pci_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct sim_bus *bus;
	unsigned int i;
	int ret, nvec;

	if (sim)
		return -EBUSY;
	bus = devm_kzalloc(&pdev->dev, sizeof(*bus), GFP_KERNEL);
	if (!bus)
		return -ENOMEM;
	bus->pdev = pdev;
	mutex_init(&bus->scan_lock);
	mutex_init(&bus->open_lock);
	spin_lock_init(&bus->irq_lock);
	init_waitqueue_head(&bus->ctl_wq);
	INIT_WORK(&bus->scan_work, sim_scan);
	for (i = 0; i < VMBUS_SIM_MAX_CHANNELS; i++)
		bus->chan[i].index = i;

	ret = pcim_enable_device(pdev);
	if (ret)
		return ret;
	pci_set_master(pdev);	/* MSI-X messages are bus-master writes */
	bus->regs = pcim_iomap(pdev, 0, 0);
	bus->shm = pcim_iomap(pdev, 2, 0);
	if (!bus->regs || !bus->shm)
		return -ENOMEM;
	if (pci_resource_len(pdev, 2) < sizeof(struct vmbus_sim_shm)) {
		dev_err(&pdev->dev, "shared memory too small (%llu bytes)\n",
			(u64)pci_resource_len(pdev, 2));
		return -EINVAL;
	}
	nvec = pci_alloc_irq_vectors(pdev, VMBUS_SIM_NR_VECTORS, VMBUS_SIM_NR_VECTORS,
				     PCI_IRQ_MSIX);
	if (nvec < 0) {
		dev_err(&pdev->dev, "needs %u MSI-X vectors (ivshmem vectors=%u): %d\n",
			VMBUS_SIM_NR_VECTORS, VMBUS_SIM_NR_VECTORS, nvec);
		return nvec;
	}
	sim = bus;
	ret = request_irq(pci_irq_vector(pdev, VMBUS_SIM_VEC_CONTROL), sim_ctl_irq, 0,
			  "vmbus_sim-ctl", bus);
	if (ret)
		goto err_vectors;
	for (i = 0; i < VMBUS_SIM_MAX_CHANNELS; i++) {
		ret = request_irq(pci_irq_vector(pdev, 1 + i), sim_chan_irq, 0,
				  "vmbus_sim-chan", &bus->chan[i]);
		if (ret)
			goto err_irqs;
	}
	iowrite32(ioread32(bus->regs + IVSHMEM_REG_IVPOSITION), &bus->shm->guest_id);
	iowrite32(shm_rd(&bus->shm->guest_gen) + 1, &bus->shm->guest_gen);
	pci_set_drvdata(pdev, bus);
	bus->debugfs = debugfs_create_dir("vmbus_sim", NULL);
	debugfs_create_file("pm", 0200, bus->debugfs, bus, &sim_pm_fops);
	schedule_work(&bus->scan_work);
	return 0;

err_irqs:
	while (i--)
		free_irq(pci_irq_vector(pdev, 1 + i), &bus->chan[i]);
	free_irq(pci_irq_vector(pdev, VMBUS_SIM_VEC_CONTROL), bus);
err_vectors:
	pci_free_irq_vectors(pdev);
	sim = NULL;
	return ret;
}

static void sim_pci_remove(struct pci_dev *pdev)
{
	struct sim_bus *bus = pci_get_drvdata(pdev);
	unsigned int i;

	debugfs_remove_recursive(bus->debugfs);
	mutex_lock(&bus->scan_lock);
	WRITE_ONCE(bus->removing, true);
	mutex_unlock(&bus->scan_lock);
	cancel_work_sync(&bus->scan_work);
	mutex_lock(&bus->scan_lock);
	for (i = 0; i < VMBUS_SIM_MAX_CHANNELS; i++)
		sim_remove_device(&bus->chan[i]);
	mutex_unlock(&bus->scan_lock);
	for (i = 0; i < VMBUS_SIM_MAX_CHANNELS; i++)
		free_irq(pci_irq_vector(pdev, 1 + i), &bus->chan[i]);
	free_irq(pci_irq_vector(pdev, VMBUS_SIM_VEC_CONTROL), bus);
	cancel_work_sync(&bus->scan_work);
	pci_free_irq_vectors(pdev);
	sim = NULL;
}

static const struct pci_device_id sim_pci_ids[] = {
	{ PCI_DEVICE(0x1af4, 0x1110) },	/* ivshmem */
	{ }
};
MODULE_DEVICE_TABLE(pci, sim_pci_ids);

static struct pci_driver sim_pci_driver = {
	.name = "vmbus_sim",
	.id_table = sim_pci_ids,
	.probe = sim_pci_probe,
	.remove = sim_pci_remove,
};

static int __init vmbus_sim_init(void)
{
	int ret = bus_register(&sim_bus_type);

	if (ret)
		return ret;
	ret = pci_register_driver(&sim_pci_driver);
	if (ret)
		bus_unregister(&sim_bus_type);
	return ret;
}

static void __exit vmbus_sim_exit(void)
{
	pci_unregister_driver(&sim_pci_driver);
	bus_unregister(&sim_bus_type);
}

module_init(vmbus_sim_init);
module_exit(vmbus_sim_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Simulated VMBus over ivshmem-doorbell for testing VMBus drivers");
