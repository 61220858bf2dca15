/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The control page of the simulated VMBus: the ivshmem-doorbell shared memory
 * (BAR2) between the guest's vmbus_sim.ko and the host simulator. It replaces
 * Hyper-V's SynIC message page for the few control messages the test bed
 * needs (offer, rescind, open, close). The channel rings themselves live in
 * guest RAM in the real VMBus layout, and the host reads them by GPA.
 *
 * Doorbells (ivshmem vectors): vector 0 = control, vector 1 + i = channel i.
 * The guest rings the host's vector after changing a guest-owned field; the
 * host rings the guest's vector after changing a host-owned field.
 *
 * Offer:   host fills type/instance, sets offered = 1, bumps offer_seq, rings 0.
 * Rescind: host sets offered = 0, bumps offer_seq, rings 0. (A host completes
 *          or fails what is pending on the channel before it rescinds.)
 * Open:    guest publishes ring_pfn[] (send ring pages, then receive ring
 *          pages; each ring = 1 control page + data pages), sets the page
 *          counts, state = OPEN, bumps open_seq, rings 0. The host attaches to
 *          the rings and sets open_ack = open_seq, rings 0.
 * Close:   guest sets state = CLOSED, bumps open_seq, rings 0; the host stops
 *          touching the rings and sets open_ack = open_seq, rings 0. Only then
 *          does the guest free the ring pages.
 * Data:    ring signalling follows VMBus rules (interrupt_mask, pending_send_sz)
 *          with the channel's doorbell vector in place of HvSignalEvent.
 * Host attach: a host process sets host_peer, bumps host_gen and sets
 *          magic last; a guest waits for magic before using the page.
 * All fields are little-endian; each side writes only the fields it owns.
 */
#ifndef _VMBUS_SIM_SHM_H
#define _VMBUS_SIM_SHM_H

#include <linux/types.h>

#define VMBUS_SIM_MAGIC		0x4d534256u	/* "VBSM" */
#define VMBUS_SIM_VERSION	1u
#define VMBUS_SIM_MAX_CHANNELS	4u
#define VMBUS_SIM_MAX_RING_PFNS	128u	/* 2 rings of at most 256 KiB */
#define VMBUS_SIM_VEC_CONTROL	0u
#define VMBUS_SIM_NR_VECTORS	(1u + VMBUS_SIM_MAX_CHANNELS)

#define VMBUS_SIM_STATE_CLOSED	0u
#define VMBUS_SIM_STATE_OPEN	1u

struct vmbus_sim_channel {
	/* host-owned */
	__u32 offered;		/* 1 = offered, 0 = none or rescinded */
	__u32 offer_seq;	/* bumped on every offer and rescind */
	__u32 open_ack;		/* = open_seq once the host has acted on it */
	__u32 host_status;	/* 0, or an errno the host refused the open with */
	__u8 if_type[16];	/* device class (guid_t byte order) */
	__u8 if_instance[16];	/* device instance (guid_t byte order) */
	/* guest-owned */
	__u32 state;		/* VMBUS_SIM_STATE_* */
	__u32 open_seq;		/* bumped on every open and close */
	__u32 send_pages;	/* guest->host ring, control page included */
	__u32 recv_pages;	/* host->guest ring, control page included */
	__u64 ring_pfn[VMBUS_SIM_MAX_RING_PFNS];
};

struct vmbus_sim_shm {
	__u32 magic;		/* host: VMBUS_SIM_MAGIC once attached */
	__u32 version;		/* host: VMBUS_SIM_VERSION */
	__u32 host_gen;		/* host: bumped by every host process that attaches */
	__u32 host_peer;	/* host: ivshmem peer id to ring */
	__u32 guest_id;		/* guest: its ivshmem IVPosition */
	__u32 guest_gen;	/* guest: bumped when the bus driver (re)starts */
	__u32 nr_channels;	/* host: VMBUS_SIM_MAX_CHANNELS */
	__u32 reserved;
	struct vmbus_sim_channel chan[VMBUS_SIM_MAX_CHANNELS];
};

#endif /* _VMBUS_SIM_SHM_H */
