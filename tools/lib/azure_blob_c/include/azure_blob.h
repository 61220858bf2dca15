/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * azure_blob.h - C API of the hv_azure_blob user library (libazure_blob).
 *
 * Azure Blob storage from C, through /dev/azure_blob (the VMBus fast path
 * of Azure VMs) or over HTTP(S) with SharedKey (a storage account, Azurite,
 * the simulator's HTTP door). The same calls work on either transport.
 *
 *   azblob_client *c;
 *   if (azblob_client_open_vsc(NULL, NULL, &c) == 0) {
 *           azblob_container_create(c, "photos");
 *           azblob_blob_upload(c, "photos", "cat.jpg", "meow", 4);
 *           azblob_client_free(c);
 *   }
 *
 * Link with `pkg-config --cflags --libs azure_blob` (add --static for a
 * static binary). See Documentation/hv_azure_blob/c-api.rst.
 *
 * Return values. Every function that can fail returns 0 on success or a
 * negative errno:
 *   -EINVAL    a NULL or malformed argument (or HTTP 400/416)
 *   -ENOENT    no such container or blob (HTTP 404), or no /dev/azure_blob
 *   -EEXIST    the container exists already (HTTP 409)
 *   -EACCES    the service refused the credentials (HTTP 403), or the
 *              device node's permissions
 *   -EOPNOTSUPP  azblob_raw_request() on an HTTP client
 *   -EIO       any other failure (other HTTP errors, a host or protocol error)
 *   or the errno of a failed system call (-ECONNREFUSED, -ETIMEDOUT, ...).
 * The exceptions are azblob_list_blobs() and azblob_list_containers(), which
 * also return what a callback returned to stop them.
 *
 * Errors. Each call also records, per thread, what went wrong: read it with
 * azblob_last_error_message(), azblob_last_http_status() and
 * azblob_last_error_code() right after the failing call. Every other call
 * (but azblob_strerror(), azblob_version() and azblob_client_free()) resets
 * it when it succeeds: message "", status 0, code "".
 *
 * Ownership. Handles are opaque: an azblob_client is created by an
 * azblob_client_open_*() function and destroyed by azblob_client_free().
 * Strings returned by the library belong to the library: never free them.
 * Buffers passed in belong to the caller and are not kept after the call
 * returns.
 *
 * Threads. An azblob_client may be used by several threads at once (HTTP
 * connections are pooled; requests on /dev/azure_blob are independent), but
 * azblob_client_free() must not race with other calls on the same client.
 * The last-error values are per thread. Callbacks run on the calling thread,
 * before the listing call returns.
 *
 * Stability. Functions are only ever added; the SONAME (libazure_blob.so.0)
 * changes if an existing one changes. Strings are UTF-8 and NUL-terminated.
 */
#ifndef AZURE_BLOB_H
#define AZURE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this header; azblob_version() is the library's. */
#define AZBLOB_VERSION_MAJOR 0
#define AZBLOB_VERSION_MINOR 1
#define AZBLOB_VERSION_PATCH 0
#define AZBLOB_VERSION "0.1.0"

/* The Azurite development account (the simulator's default) and its public key. */
#define AZBLOB_DEV_ACCOUNT "devstoreaccount1"
#define AZBLOB_DEV_KEY \
	"Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/* A connection to one storage account (opaque). */
typedef struct azblob_client azblob_client;

/* The library's version, "MAJOR.MINOR.PATCH" (static storage). */
const char *azblob_version(void);

/* ---- Errors ------------------------------------------------------------ */

/* A description of the last failure on this thread, "" if the last call
 * succeeded. Valid until the next azblob_*() call on this thread. */
const char *azblob_last_error_message(void);

/* The HTTP status of the last failure on this thread (404, 409, 403, ...),
 * or 0 if the service did not answer (or the last call succeeded). */
int azblob_last_http_status(void);

/* The service's error code (x-ms-error-code: "BlobNotFound",
 * "ContainerAlreadyExists", ...) of the last failure on this thread, or ""
 * if there is none. Valid until the next azblob_*() call on this thread. */
const char *azblob_last_error_code(void);

/* A short description of an errno value, negative or positive
 * (static storage, thread-safe, never NULL). */
const char *azblob_strerror(int err);

/* ---- Clients ----------------------------------------------------------- */

/* A client on the /dev/azure_blob transport. device: the node, NULL for
 * "/dev/azure_blob"; account: the storage account, NULL for
 * AZBLOB_DEV_ACCOUNT. On success *out is the new client; on failure it is
 * NULL (-ENOENT: no device, the driver is not loaded). */
int azblob_client_open_vsc(const char *device, const char *account, azblob_client **out);

/* A client over HTTP or HTTPS. endpoint: "http://127.0.0.1:10000/ACCOUNT"
 * (path style) or "https://ACCOUNT.blob.core.windows.net"; account: NULL
 * for AZBLOB_DEV_ACCOUNT; key_base64: the account key, NULL for
 * AZBLOB_DEV_KEY. Nothing is sent yet: a bad key shows up as -EACCES (403)
 * on the first request. The PEM file named by AZBLOB_CA_FILE, if set, is
 * trusted for HTTPS besides the public roots. On failure *out is NULL. */
int azblob_client_open_http(const char *endpoint, const char *account, const char *key_base64,
			    azblob_client **out);

/* Destroys a client (NULL is allowed and does nothing). */
void azblob_client_free(azblob_client *client);

/* ---- Containers -------------------------------------------------------- */

/* Creates a container (-EEXIST, HTTP 409 ContainerAlreadyExists, if it exists). */
int azblob_container_create(azblob_client *client, const char *container);

/* Deletes a container and its blobs (-ENOENT, 404 ContainerNotFound). */
int azblob_container_delete(azblob_client *client, const char *container);

/* Sets *exists to 1 if the container exists, else 0. */
int azblob_container_exists(azblob_client *client, const char *container, int *exists);

/* Called once per container, in name order; return 0 to go on, anything
 * else to stop. name is valid during the call only. */
typedef int (*azblob_list_containers_cb)(const char *name, void *ctx);

/* Lists the containers whose names start with prefix (NULL or "": all).
 * Returns 0, a negative errno, or the non-zero value a callback returned to
 * stop the listing. */
int azblob_list_containers(azblob_client *client, const char *prefix, azblob_list_containers_cb cb,
			   void *ctx);

/* ---- Blobs ------------------------------------------------------------- */

/* Uploads len bytes at data as a block blob, replacing any blob of that name
 * (large data goes up in parallel 8 MiB blocks). data may be NULL if len is 0. */
int azblob_blob_upload(azblob_client *client, const char *container, const char *blob, const void *data,
		       size_t len);

/* Reads up to cap bytes of the blob from offset into buf and sets *out_len
 * to the number read: less than cap only at the end of the blob, 0 at or
 * past it (like pread). -ENOENT (404 BlobNotFound) if there is no such blob. */
int azblob_blob_download(azblob_client *client, const char *container, const char *blob, uint64_t offset,
			 void *buf, size_t cap, size_t *out_len);

/* Sets *size to the blob's size in bytes. */
int azblob_blob_size(azblob_client *client, const char *container, const char *blob, uint64_t *size);

/* Sets *exists to 1 if the blob exists, else 0. */
int azblob_blob_exists(azblob_client *client, const char *container, const char *blob, int *exists);

/* Deletes a blob (-ENOENT, 404 BlobNotFound, if there is none). */
int azblob_blob_delete(azblob_client *client, const char *container, const char *blob);

/* Called once per blob, in name order, with its size; return 0 to go on,
 * anything else to stop. name is valid during the call only. */
typedef int (*azblob_list_blobs_cb)(const char *name, uint64_t size, void *ctx);

/* Lists the blobs of a container whose names start with prefix (NULL or
 * "": all). Returns 0, a negative errno, or the non-zero value a callback
 * returned to stop the listing. */
int azblob_list_blobs(azblob_client *client, const char *container, const char *prefix,
		      azblob_list_blobs_cb cb, void *ctx);

/* ---- The raw exchange ---------------------------------------------------- */

/* One ioctl on /dev/azure_blob (struct az_blob_request_sync of
 * <misc/hv_azure_blob.h>), for protocols of your own: only on a client of
 * azblob_client_open_vsc() (else -EOPNOTSUPP).
 *   guid        16 bytes forwarded to the host, NULL for zeros
 *   timeout_ms  the host-side timeout, 0 for none
 *   request     request_len bytes sent to the host
 *   response    response_cap bytes the host may write
 *   data        data_cap bytes: the first data_valid are sent, and the host
 *               may write all of them (NULL if data_cap is 0)
 * The buffers must not overlap. Returns 0 when the host answered: then
 * *host_status is 0 or the host's HRESULT-style status (0x8007007A: the
 * response buffer is too small and *response_len is the size needed), and
 * *response_len the bytes written to response. A negative errno means the
 * ioctl itself failed (-EINVAL: a bad length, -ENODEV: the device is gone). */
int azblob_raw_request(azblob_client *client, const uint8_t *guid, uint32_t timeout_ms, const void *request,
		       size_t request_len, void *response, size_t response_cap, void *data, size_t data_cap,
		       size_t data_valid, uint32_t *host_status, uint32_t *response_len);

#ifdef __cplusplus
}
#endif

#endif /* AZURE_BLOB_H */
