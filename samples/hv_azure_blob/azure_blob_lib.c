// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * azure_blob_lib - a first C program on libazure_blob, the C API of the
 * hv_azure_blob user library.
 *
 * It creates a container, uploads 1 MiB, reads a range back and checks it,
 * lists the container, and deletes what it made.
 *
 * Usage:
 *   azure_blob_lib                   through /dev/azure_blob (an Azure VM, the test guest)
 *   azure_blob_lib --http ENDPOINT   over HTTP, e.g. http://127.0.0.1:10000/devstoreaccount1
 *                                    (the development account and key; set AZBLOB_ACCOUNT
 *                                    and AZBLOB_KEY for another account)
 *
 * Exit status: 0 success, 1 a call failed, 2 bad usage, 3 the data read back differs.
 *
 * Build (after tools/lib/azure_blob_c/install.sh PREFIX; PKG_CONFIG_PATH=PREFIX/lib/pkgconfig):
 *   cc -Wall -o azure_blob_lib azure_blob_lib.c $(pkg-config --cflags --libs azure_blob)
 *   cc -static -o azure_blob_lib azure_blob_lib.c $(pkg-config --static --cflags --libs azure_blob)
 */
#define _POSIX_C_SOURCE 200809L
#include <azure_blob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOB_SIZE (1024 * 1024)
#define RANGE_OFFSET 4096
#define RANGE_LENGTH 65536

/* Prints what failed, with the library's explanation, and returns 1. */
static int fail(const char *what, int rc)
{
	fprintf(stderr, "azure_blob_lib: %s failed: %s (%d)\n", what, azblob_strerror(rc), rc);
	fprintf(stderr, "  %s\n", azblob_last_error_message());
	if (azblob_last_http_status() != 0)
		fprintf(stderr, "  HTTP status %d, error code %s\n", azblob_last_http_status(),
			azblob_last_error_code());
	return 1;
}

/* Called by azblob_list_blobs() once per blob. */
static int print_blob(const char *name, uint64_t size, void *ctx)
{
	int *count = ctx;

	printf("  %-20s %llu bytes\n", name, (unsigned long long)size);
	(*count)++;
	return 0; /* 0: go on with the next blob */
}

/* Everything between opening and freeing the client. */
static int run(azblob_client *client)
{
	char container[64];
	const char *blob = "hello.bin";
	unsigned char *data, range[RANGE_LENGTH];
	size_t got = 0;
	uint64_t size = 0;
	int rc, count = 0;

	/* A container of our own: names are lowercase letters, digits and dashes. */
	snprintf(container, sizeof(container), "sample-c-%ld", (long)getpid());
	rc = azblob_container_create(client, container);
	if (rc != 0)
		return fail("creating the container", rc);
	printf("created container %s\n", container);

	/* 1 MiB of a known pattern. */
	data = malloc(BLOB_SIZE);
	if (!data) {
		fprintf(stderr, "azure_blob_lib: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < BLOB_SIZE; i++)
		data[i] = (unsigned char)(i * 7 + 3);
	rc = azblob_blob_upload(client, container, blob, data, BLOB_SIZE);
	if (rc != 0) {
		free(data);
		return fail("uploading", rc);
	}
	rc = azblob_blob_size(client, container, blob, &size);
	if (rc != 0) {
		free(data);
		return fail("reading the size", rc);
	}
	printf("uploaded %s: %llu bytes\n", blob, (unsigned long long)size);

	/* Read 64 KiB from offset 4096 and compare with what we sent. */
	rc = azblob_blob_download(client, container, blob, RANGE_OFFSET, range, sizeof(range), &got);
	if (rc != 0) {
		free(data);
		return fail("downloading", rc);
	}
	if (got != RANGE_LENGTH || memcmp(range, data + RANGE_OFFSET, got) != 0) {
		fprintf(stderr, "azure_blob_lib: the range read back differs from the upload (%zu bytes)\n", got);
		free(data);
		return 3;
	}
	free(data);
	printf("read back %zu bytes at offset %d: they match\n", got, RANGE_OFFSET);

	printf("blobs in %s:\n", container);
	rc = azblob_list_blobs(client, container, NULL, print_blob, &count);
	if (rc != 0)
		return fail("listing", rc);
	if (count != 1) {
		fprintf(stderr, "azure_blob_lib: expected 1 blob, listed %d\n", count);
		return 3;
	}

	/* Clean up: the blob, then the container. */
	rc = azblob_blob_delete(client, container, blob);
	if (rc != 0)
		return fail("deleting the blob", rc);
	rc = azblob_container_delete(client, container);
	if (rc != 0)
		return fail("deleting the container", rc);
	printf("deleted %s and %s\n", blob, container);
	return 0;
}

int main(int argc, char **argv)
{
	azblob_client *client = NULL;
	int rc;

	if (argc == 3 && strcmp(argv[1], "--http") == 0) {
		/* NULL account and key: the development account (the simulator, Azurite). */
		rc = azblob_client_open_http(argv[2], getenv("AZBLOB_ACCOUNT"), getenv("AZBLOB_KEY"), &client);
		if (rc != 0)
			return fail("opening the HTTP endpoint", rc);
		printf("libazure_blob %s, over HTTP: %s\n", azblob_version(), argv[2]);
	} else if (argc == 1) {
		/* NULL device and account: /dev/azure_blob, the development account. */
		rc = azblob_client_open_vsc(NULL, getenv("AZBLOB_ACCOUNT"), &client);
		if (rc != 0)
			return fail("opening /dev/azure_blob", rc);
		printf("libazure_blob %s, through /dev/azure_blob\n", azblob_version());
	} else {
		fprintf(stderr, "usage: %s [--http ENDPOINT]\n", argv[0]);
		return 2;
	}

	rc = run(client);
	azblob_client_free(client);
	if (rc == 0)
		printf("azure_blob_lib: OK\n");
	return rc;
}
