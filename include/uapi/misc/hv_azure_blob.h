/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * hv_azure_blob: user API of the Azure Blob VMBus client driver (/dev/azure_blob).
 *
 * Binary-compatible with the 2021 v5 proposal: the 72-byte struct below is
 * passed to IOCTL_AZ_BLOB_DRIVER_USER_REQUEST; the driver pins the three
 * buffers, hands them to the host and returns when the host has answered.
 * All fields are in the CPU's byte order (the device exists on x86_64 only).
 */
#ifndef _UAPI_MISC_HV_AZURE_BLOB_H
#define _UAPI_MISC_HV_AZURE_BLOB_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Written by the driver when the host has answered. */
struct az_blob_request_sync_response {
	__u32 status;		/* host status: 0 = success, else an HRESULT */
	__u32 response_len;	/* bytes the host wrote into response_buffer */
};

struct az_blob_request_sync {
	__u8 guid[16];		/* caller's id, forwarded to the host */
	__u32 timeout;		/* host-side timeout in ms, 0 = none */
	__u32 request_len;	/* bytes in request_buffer, > 0 */
	__u32 response_len;	/* capacity of response_buffer, > 0 */
	__u32 data_len;		/* capacity of data_buffer, 0 = none */
	__u32 data_valid;	/* input bytes in data_buffer, <= data_len */
	__u32 reserved;		/* set to 0; ignored (implicit padding in v5) */
	__aligned_u64 request_buffer;
	__aligned_u64 response_buffer;
	__aligned_u64 data_buffer;
	struct az_blob_request_sync_response response;
};

#define AZ_BLOB_MAGIC_NUMBER	'R'
#define IOCTL_AZ_BLOB_DRIVER_USER_REQUEST \
	_IOWR(AZ_BLOB_MAGIC_NUMBER, 0xf0, struct az_blob_request_sync)
/* The number used by the 2021 client library; accepted as an alias. */
#define IOCTL_AZ_BLOB_DRIVER_USER_REQUEST_LEGACY \
	_IOWR(AZ_BLOB_MAGIC_NUMBER, 10, struct az_blob_request_sync)

/* At most this many 4 KiB pages across the three buffers of one request. */
#define AZ_BLOB_MAX_PAGES	8192

/* Host status values a caller may see in response.status. */
#define AZ_BLOB_STATUS_SUCCESS			0x00000000u
#define AZ_BLOB_STATUS_TIMEOUT			0x80070102u
#define AZ_BLOB_STATUS_INVALID_ARG		0x80070057u
#define AZ_BLOB_STATUS_BUFFER_TOO_SMALL		0x8007007au
#define AZ_BLOB_STATUS_DATA_TOO_SMALL		0x800700eau
#define AZ_BLOB_STATUS_INTERNAL_ERROR		0x8007054fu
#define AZ_BLOB_STATUS_NOT_SUPPORTED		0x80004001u

#endif /* _UAPI_MISC_HV_AZURE_BLOB_H */
