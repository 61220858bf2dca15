// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * azure_blob_raw: the smallest use of /dev/azure_blob, with nothing but the
 * UAPI header. It sends one Blob REST request, List Containers, and prints
 * what the host answered.
 *
 * The framing (see Documentation/hv_azure_blob/): the request buffer holds
 * an HTTP/1.1 request head, the data buffer carries the request body (its
 * first data_valid bytes) and receives the response body; the response
 * buffer receives the response head.
 *
 *   cc -I include/uapi -o azure_blob_raw samples/hv_azure_blob/azure_blob_raw.c
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <misc/hv_azure_blob.h>

static const char request[] =
	"GET /devstoreaccount1/?comp=list HTTP/1.1\r\n"
	"Host: devstoreaccount1.blob.core.windows.net\r\n"
	"x-ms-version: 2021-10-04\r\n"
	"\r\n";

int main(void)
{
	static char response[16384], data[65536];
	struct az_blob_request_sync req;
	const char *len;
	int fd, ret;

	fd = open("/dev/azure_blob", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "azure_blob_raw: cannot open /dev/azure_blob: %s\n", strerror(errno));
		return 1;
	}

	memset(&req, 0, sizeof(req));			/* zeroes the reserved field too */
	memcpy(req.guid, "azure_blob_raw!!", 16);	/* any 16 bytes of your choosing */
	req.timeout = 30000;				/* the host gives up after 30 s */
	req.request_buffer = (uintptr_t)request;
	req.request_len = strlen(request);
	req.response_buffer = (uintptr_t)response;
	req.response_len = sizeof(response) - 1;
	req.data_buffer = (uintptr_t)data;		/* no request body: data_valid = 0 */
	req.data_len = sizeof(data) - 1;

	ret = ioctl(fd, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &req);
	close(fd);
	if (ret < 0) {
		fprintf(stderr, "azure_blob_raw: ioctl failed: %s\n", strerror(errno));
		return 1;
	}
	if (req.response.status != AZ_BLOB_STATUS_SUCCESS) {
		fprintf(stderr, "azure_blob_raw: the host failed the exchange: status 0x%08x\n",
			req.response.status);
		return 1;
	}
	response[req.response.response_len] = '\0';
	printf("sent List Containers; the host answered with this head:\n%s", response);
	len = strstr(response, "Content-Length: ");
	if (len) {
		size_t n = strtoul(len + 16, NULL, 10);

		if (n > sizeof(data) - 1)
			n = sizeof(data) - 1;
		data[n] = '\0';
		printf("and this body (%zu bytes):\n%s\n", n, data);
	}
	return strncmp(response, "HTTP/1.1 200", 12) == 0 ? 0 : 1;
}
