// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * azure_blob_raw: the smallest use of /dev/azure_blob, with nothing but the
 * UAPI header. It sends one request (the text given on the command line, or
 * a default) and prints what the host answered.
 *
 *   cc -I include/uapi -o azure_blob_raw samples/hv_azure_blob/azure_blob_raw.c
 *   ./azure_blob_raw 'GET /demo/hello.txt HTTP/1.1'
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <misc/hv_azure_blob.h>

int main(int argc, char **argv)
{
	const char *text = argc > 1 ? argv[1] : "hello from the guest";
	char response[4096];
	struct az_blob_request_sync req;
	int fd, ret;

	fd = open("/dev/azure_blob", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "azure_blob_raw: cannot open /dev/azure_blob: %s\n", strerror(errno));
		return 1;
	}

	memset(&req, 0, sizeof(req));		/* zeroes the reserved field too */
	memcpy(req.guid, "azure_blob_raw!!", 16);	/* any 16 bytes of your choosing */
	req.timeout = 30000;			/* the host gives up after 30 s */
	req.request_buffer = (uintptr_t)text;
	req.request_len = strlen(text);
	req.response_buffer = (uintptr_t)response;
	req.response_len = sizeof(response);
	/* No data buffer: data_len = data_valid = 0. */

	ret = ioctl(fd, IOCTL_AZ_BLOB_DRIVER_USER_REQUEST, &req);
	if (ret < 0) {
		fprintf(stderr, "azure_blob_raw: ioctl failed: %s\n", strerror(errno));
		close(fd);
		return 1;
	}
	if (req.response.status != AZ_BLOB_STATUS_SUCCESS) {
		fprintf(stderr, "azure_blob_raw: the host answered status 0x%08x (%u bytes)\n",
			req.response.status, req.response.response_len);
		close(fd);
		return 1;
	}
	printf("sent %u bytes: \"%s\"\n", req.request_len, text);
	printf("the host answered %u bytes: \"%.*s\"\n", req.response.response_len,
	       (int)req.response.response_len, response);
	close(fd);
	return 0;
}
