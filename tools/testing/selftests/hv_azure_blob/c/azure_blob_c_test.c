// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * azure_blob_c_test - every call of the C API (libazure_blob), error paths
 * included, against a live Blob service endpoint (the simulator's HTTP door,
 * azure-blob-httpd or Azurite).
 *
 * Usage: azure_blob_c_test ENDPOINT
 *   e.g. azure_blob_c_test http://127.0.0.1:41234/devstoreaccount1
 *        azure_blob_c_test --vsc [DEVICE]
 *   (--vsc: the same calls through /dev/azure_blob and the driver, in the
 *   test guest, plus a raw List Containers exchange; the HTTP-only checks
 *   are left out)
 *
 * Prints one "ok N - ..." or "not ok N - ..." line per check and ends with
 * "N passed, M failed"; exits 0 only if nothing failed.
 * Build: cc -Wall -Wextra -Werror azure_blob_c_test.c $(pkg-config --cflags --libs azure_blob) -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#include <azure_blob.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

static void check(int ok, int line, const char *what)
{
	if (ok) {
		passed++;
		printf("ok %d - %s\n", passed + failed, what);
	} else {
		failed++;
		printf("not ok %d - %s (line %d; last error: \"%s\", status %d, code \"%s\")\n", passed + failed,
		       what, line, azblob_last_error_message(), azblob_last_http_status(),
		       azblob_last_error_code());
	}
	fflush(stdout);
}

#define CHECK(cond) check(!!(cond), __LINE__, #cond)

/* A failing call: its return value, HTTP status and x-ms-error-code. */
static void check_error(int rc, int want_rc, int want_status, const char *want_code, int line, const char *what)
{
	char buf[512];
	int ok = rc == want_rc && azblob_last_http_status() == want_status &&
		 strcmp(azblob_last_error_code(), want_code) == 0 && azblob_last_error_message()[0] != '\0';

	snprintf(buf, sizeof(buf), "%s -> %d (%s), HTTP %d, code \"%s\" [got %d]", what, want_rc,
		 azblob_strerror(want_rc), want_status, want_code, rc);
	check(ok, line, buf);
}

#define CHECK_ERR(call, rc, status, code) check_error((call), (rc), (status), (code), __LINE__, #call)

/* The last call succeeded and left no error behind. */
#define CHECK_OK(call)                                                                                  \
	check((call) == 0 && azblob_last_error_message()[0] == '\0' && azblob_last_http_status() == 0 && \
		      azblob_last_error_code()[0] == '\0',                                              \
	      __LINE__, #call " == 0")

static const char *endpoint;
static char container[64];

/* Fills buf with a pattern that depends on the seed and the position. */
static void pattern(unsigned char *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)((i * 31 + seed * 7 + (i >> 12)) & 0xff);
}

struct listing {
	int count;
	uint64_t total;
	char names[8][64];
	int stop_at;   /* stop (return stop_with) at this entry, 0 for never */
	int stop_with;
};

static int on_blob(const char *name, uint64_t size, void *ctx)
{
	struct listing *l = ctx;

	if (l->count < 8)
		snprintf(l->names[l->count], sizeof(l->names[0]), "%s", name);
	l->count++;
	l->total += size;
	return l->count == l->stop_at ? l->stop_with : 0;
}

static int on_container(const char *name, void *ctx)
{
	struct listing *l = ctx;

	if (strcmp(name, container) == 0)
		l->stop_with = 1; /* seen */
	l->count++;
	return 0;
}

static void test_basics(void)
{
	CHECK(strcmp(azblob_version(), AZBLOB_VERSION) == 0);
	CHECK(strcmp(azblob_strerror(-ENOENT), azblob_strerror(ENOENT)) == 0);
	CHECK(strcmp(azblob_strerror(0), "success") == 0);
	CHECK(strcmp(azblob_strerror(-EEXIST), azblob_strerror(-ENOENT)) != 0);
	CHECK(strcmp(azblob_strerror(-123456), "unknown error") == 0);
	azblob_client_free(NULL);
	CHECK(1); /* azblob_client_free(NULL) is a no-op */
}

static void test_open_errors(void)
{
	azblob_client *c = (azblob_client *)&c;

	CHECK_ERR(azblob_client_open_http(NULL, NULL, NULL, &c), -EINVAL, 0, "");
	CHECK(c == NULL);
	CHECK(strstr(azblob_last_error_message(), "endpoint is NULL") != NULL);
	CHECK_ERR(azblob_client_open_http(endpoint, NULL, NULL, NULL), -EINVAL, 0, "");
	c = (azblob_client *)&c;
	CHECK_ERR(azblob_client_open_http("ftp://127.0.0.1/x", NULL, NULL, &c), -EINVAL, 0, "");
	CHECK(c == NULL && strstr(azblob_last_error_message(), "http://") != NULL);
	CHECK_ERR(azblob_client_open_http(endpoint, NULL, "not base64!", &c), -EINVAL, 0, "");
	CHECK(strstr(azblob_last_error_message(), "base64") != NULL);
	CHECK_ERR(azblob_client_open_http(endpoint, "", NULL, &c), -EINVAL, 0, "");
	CHECK_ERR(azblob_client_open_vsc("/nonexistent/azure_blob", NULL, &c), -ENOENT, 0, "");
	CHECK(c == NULL && strstr(azblob_last_error_message(), "/nonexistent/azure_blob") != NULL);
	CHECK_ERR(azblob_client_open_vsc(NULL, NULL, NULL), -EINVAL, 0, "");
	if (access("/dev/azure_blob", F_OK) != 0)
		CHECK_ERR(azblob_client_open_vsc(NULL, NULL, &c), -ENOENT, 0, "");
}

static void test_null_arguments(azblob_client *c)
{
	int yes;
	uint64_t size;
	size_t len;
	char buf[8];
	uint32_t st, rl;
	struct listing l = { 0 };

	CHECK_ERR(azblob_container_create(NULL, container), -EINVAL, 0, "");
	CHECK(strstr(azblob_last_error_message(), "client is NULL") != NULL);
	CHECK_ERR(azblob_container_create(c, NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_container_delete(NULL, container), -EINVAL, 0, "");
	CHECK_ERR(azblob_container_delete(c, NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_container_exists(NULL, container, &yes), -EINVAL, 0, "");
	CHECK_ERR(azblob_container_exists(c, NULL, &yes), -EINVAL, 0, "");
	CHECK_ERR(azblob_container_exists(c, container, NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_list_containers(NULL, NULL, on_container, &l), -EINVAL, 0, "");
	CHECK_ERR(azblob_list_containers(c, NULL, NULL, &l), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_upload(NULL, container, "b", "x", 1), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_upload(c, NULL, "b", "x", 1), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_upload(c, container, NULL, "x", 1), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_upload(c, container, "b", NULL, 1), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_download(NULL, container, "b", 0, buf, sizeof(buf), &len), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_download(c, NULL, "b", 0, buf, sizeof(buf), &len), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_download(c, container, NULL, 0, buf, sizeof(buf), &len), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_download(c, container, "b", 0, NULL, sizeof(buf), &len), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_download(c, container, "b", 0, buf, sizeof(buf), NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_size(NULL, container, "b", &size), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_size(c, NULL, "b", &size), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_size(c, container, NULL, &size), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_size(c, container, "b", NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_exists(NULL, container, "b", &yes), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_exists(c, NULL, "b", &yes), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_exists(c, container, NULL, &yes), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_exists(c, container, "b", NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_delete(NULL, container, "b"), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_delete(c, NULL, "b"), -EINVAL, 0, "");
	CHECK_ERR(azblob_blob_delete(c, container, NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_list_blobs(NULL, container, NULL, on_blob, &l), -EINVAL, 0, "");
	CHECK_ERR(azblob_list_blobs(c, NULL, NULL, on_blob, &l), -EINVAL, 0, "");
	CHECK_ERR(azblob_list_blobs(c, container, NULL, NULL, &l), -EINVAL, 0, "");
	CHECK(l.count == 0);
	CHECK_ERR(azblob_raw_request(NULL, NULL, 0, "x", 1, buf, sizeof(buf), NULL, 0, 0, &st, &rl), -EINVAL, 0, "");
	CHECK_ERR(azblob_raw_request(c, NULL, 0, "x", 1, buf, sizeof(buf), NULL, 0, 0, NULL, &rl), -EINVAL, 0, "");
	CHECK_ERR(azblob_raw_request(c, NULL, 0, "x", 1, buf, sizeof(buf), NULL, 0, 0, &st, NULL), -EINVAL, 0, "");
	CHECK_ERR(azblob_raw_request(c, NULL, 0, "x", 1, buf, sizeof(buf), buf + 4, 4, 5, &st, &rl), -EINVAL, 0,
		  "");
	CHECK_ERR(azblob_raw_request(c, NULL, 0, "x", 1, buf, sizeof(buf), buf + 4, 4, 0, &st, &rl), -EINVAL, 0,
		  "");
	CHECK(strstr(azblob_last_error_message(), "overlap") != NULL);
}

static void test_containers(azblob_client *c)
{
	int yes = -1;
	struct listing l = { 0 };

	CHECK_OK(azblob_container_exists(c, container, &yes));
	CHECK(yes == 0);
	CHECK_OK(azblob_container_create(c, container));
	CHECK_ERR(azblob_container_create(c, container), -EEXIST, 409, "ContainerAlreadyExists");
	CHECK(strstr(azblob_last_error_message(), "409") != NULL);
	CHECK_OK(azblob_container_exists(c, container, &yes));
	CHECK(yes == 1);
	CHECK_OK(azblob_list_containers(c, container, on_container, &l));
	CHECK(l.count == 1 && l.stop_with == 1);
	memset(&l, 0, sizeof(l));
	CHECK_OK(azblob_list_containers(c, NULL, on_container, &l));
	CHECK(l.count >= 1 && l.stop_with == 1);
	memset(&l, 0, sizeof(l));
	CHECK_OK(azblob_list_containers(c, "no-such-prefix-", on_container, &l));
	CHECK(l.count == 0);
}

#define BIG (20u << 20) /* above the single-shot limit: parallel staged blocks */

static void test_blobs(azblob_client *c)
{
	unsigned char *big = malloc(BIG), *back = malloc(BIG);
	unsigned char small[4096];
	uint64_t size = 1;
	size_t len = 1;
	int yes = -1;

	if (!big || !back) {
		CHECK(!"out of memory");
		return;
	}
	pattern(big, BIG, 1);
	CHECK_OK(azblob_blob_upload(c, container, "dir/big.bin", big, BIG));
	CHECK_OK(azblob_blob_upload(c, container, "dir/a.txt", "hello", 5));
	CHECK_OK(azblob_blob_upload(c, container, "other/b.txt", "world!", 6));
	CHECK_OK(azblob_blob_upload(c, container, "empty", NULL, 0));

	CHECK_OK(azblob_blob_size(c, container, "dir/big.bin", &size));
	CHECK(size == BIG);
	CHECK_OK(azblob_blob_size(c, container, "empty", &size));
	CHECK(size == 0);
	CHECK_OK(azblob_blob_exists(c, container, "dir/a.txt", &yes));
	CHECK(yes == 1);
	CHECK_OK(azblob_blob_exists(c, container, "no-such-blob", &yes));
	CHECK(yes == 0);

	/* Whole, ranges, the tail, at and past the end. */
	CHECK_OK(azblob_blob_download(c, container, "dir/big.bin", 0, back, BIG, &len));
	CHECK(len == BIG && memcmp(big, back, BIG) == 0);
	CHECK_OK(azblob_blob_download(c, container, "dir/big.bin", 1000003, small, sizeof(small), &len));
	CHECK(len == sizeof(small) && memcmp(big + 1000003, small, len) == 0);
	CHECK_OK(azblob_blob_download(c, container, "dir/big.bin", BIG - 100, small, sizeof(small), &len));
	CHECK(len == 100 && memcmp(big + BIG - 100, small, len) == 0);
	CHECK_OK(azblob_blob_download(c, container, "dir/big.bin", BIG, small, sizeof(small), &len));
	CHECK(len == 0);
	CHECK_OK(azblob_blob_download(c, container, "dir/big.bin", BIG + 4096, small, sizeof(small), &len));
	CHECK(len == 0);
	CHECK_OK(azblob_blob_download(c, container, "dir/a.txt", 1, small, 3, &len));
	CHECK(len == 3 && memcmp(small, "ell", 3) == 0);
	len = 1;
	CHECK_OK(azblob_blob_download(c, container, "empty", 0, small, sizeof(small), &len));
	CHECK(len == 0);
	len = 1;
	CHECK_OK(azblob_blob_download(c, container, "dir/a.txt", 0, small, 0, &len));
	CHECK(len == 0);
	/* Replacing a blob. */
	CHECK_OK(azblob_blob_upload(c, container, "dir/a.txt", "HELLO", 5));
	CHECK_OK(azblob_blob_download(c, container, "dir/a.txt", 0, small, sizeof(small), &len));
	CHECK(len == 5 && memcmp(small, "HELLO", 5) == 0);

	/* Not found: -ENOENT, 404 and the service's code. */
	CHECK_ERR(azblob_blob_download(c, container, "no-such-blob", 0, small, sizeof(small), &len), -ENOENT, 404,
		  "BlobNotFound");
	CHECK_ERR(azblob_blob_download(c, container, "no-such-blob", 0, small, 0, &len), -ENOENT, 404,
		  "BlobNotFound");
	CHECK_ERR(azblob_blob_size(c, container, "no-such-blob", &size), -ENOENT, 404, "BlobNotFound");
	CHECK_ERR(azblob_blob_download(c, "no-such-container", "b", 0, small, sizeof(small), &len), -ENOENT, 404,
		  "ContainerNotFound");
	CHECK_ERR(azblob_blob_upload(c, "no-such-container", "b", "x", 1), -ENOENT, 404, "ContainerNotFound");
	/* A success clears the last error. */
	CHECK_OK(azblob_blob_size(c, container, "dir/a.txt", &size));
	free(big);
	free(back);
}

static void test_listing(azblob_client *c)
{
	struct listing l = { 0 };

	CHECK_OK(azblob_list_blobs(c, container, NULL, on_blob, &l));
	CHECK(l.count == 4 && l.total == BIG + 5 + 6 + 0);
	CHECK(strcmp(l.names[0], "dir/a.txt") == 0 && strcmp(l.names[1], "dir/big.bin") == 0 &&
	      strcmp(l.names[2], "empty") == 0 && strcmp(l.names[3], "other/b.txt") == 0);
	memset(&l, 0, sizeof(l));
	CHECK_OK(azblob_list_blobs(c, container, "dir/", on_blob, &l));
	CHECK(l.count == 2 && l.total == BIG + 5);
	memset(&l, 0, sizeof(l));
	CHECK_OK(azblob_list_blobs(c, container, "", on_blob, &l));
	CHECK(l.count == 4);
	memset(&l, 0, sizeof(l));
	CHECK_OK(azblob_list_blobs(c, container, "nothing/", on_blob, &l));
	CHECK(l.count == 0);
	/* A callback stops the listing with its own value. */
	memset(&l, 0, sizeof(l));
	l.stop_at = 2;
	l.stop_with = 7;
	CHECK(azblob_list_blobs(c, container, NULL, on_blob, &l) == 7 && l.count == 2);
	memset(&l, 0, sizeof(l));
	l.stop_at = 1;
	l.stop_with = -ECANCELED;
	CHECK(azblob_list_blobs(c, container, NULL, on_blob, &l) == -ECANCELED && l.count == 1);
	CHECK_ERR(azblob_list_blobs(c, "no-such-container", NULL, on_blob, &l), -ENOENT, 404, "ContainerNotFound");
}

static void test_raw_on_http(azblob_client *c)
{
	char req[] = "GET / HTTP/1.1\r\n\r\n", resp[256], data[256];
	uint32_t st = 1, rl = 1;

	CHECK_ERR(azblob_raw_request(c, NULL, 1000, req, sizeof(req) - 1, resp, sizeof(resp), data, sizeof(data), 0,
				     &st, &rl),
		  -EOPNOTSUPP, 0, "");
	CHECK(strstr(azblob_last_error_message(), "azblob_client_open_vsc") != NULL);
}

/*
 * The VSC transport's plumbing without the driver: a client on /dev/null
 * opens, and its raw request and blob calls reach the real ioctl, which
 * /dev/null refuses (-ENOTTY).
 */
static void test_vsc_plumbing(void)
{
	static const uint8_t guid[16] = "azure_blob_c_tst";
	char req[] = "GET / HTTP/1.1\r\n\r\n", resp[256], data[256] = "in";
	uint32_t st = 7, rl = 7;
	uint64_t size;
	azblob_client *c = NULL;

	CHECK_OK(azblob_client_open_vsc("/dev/null", "myaccount", &c));
	if (!c)
		return;
	CHECK_ERR(azblob_raw_request(c, guid, 1000, req, sizeof(req) - 1, resp, sizeof(resp), data, sizeof(data), 2,
				     &st, &rl),
		  -ENOTTY, 0, "");
	CHECK(st == 7 && rl == 7); /* untouched when the ioctl fails */
	CHECK_ERR(azblob_raw_request(c, NULL, 0, req, sizeof(req) - 1, resp, sizeof(resp), NULL, 0, 0, &st, &rl),
		  -ENOTTY, 0, "");
	CHECK_ERR(azblob_blob_size(c, "c", "b", &size), -ENOTTY, 0, "");
	azblob_client_free(c);
}

/*
 * A raw exchange through the driver: a List Containers request head in the
 * request buffer, the response head back in the response buffer and the XML
 * body in the data buffer (the VSC door's encoding).
 */
static void test_raw_on_vsc(azblob_client *c)
{
	static const uint8_t guid[16] = "azure_blob_c_tst";
	char req[] = "GET /devstoreaccount1/?comp=list HTTP/1.1\r\nx-ms-version: 2021-10-04\r\n\r\n";
	char resp[4096] = "", data[65536] = "";
	uint32_t st = 7, rl = 0;

	CHECK_OK(azblob_raw_request(c, guid, 30000, req, sizeof(req) - 1, resp, sizeof(resp) - 1, data,
				    sizeof(data) - 1, 0, &st, &rl));
	CHECK(st == 0 && rl > 12 && rl < sizeof(resp));
	CHECK(strncmp(resp, "HTTP/1.1 200", 12) == 0);
	CHECK(strstr(data, "<EnumerationResults") != NULL && strstr(data, container) != NULL);
	/* A response buffer too small: the host says so and how much it needs. */
	CHECK_OK(azblob_raw_request(c, guid, 30000, req, sizeof(req) - 1, resp, 8, data, sizeof(data) - 1, 0, &st,
				    &rl));
	CHECK(st == 0x8007007a && rl > 8);
}

/* Threads: one client shared by four threads, each with its own last error. */
struct worker {
	azblob_client *c;
	int id, ok;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	unsigned char up[65536], down[65536];
	char name[32];
	size_t len;
	uint64_t size;

	snprintf(name, sizeof(name), "threads/%d", w->id);
	w->ok = 1;
	for (int i = 0; i < 10 && w->ok; i++) {
		pattern(up, sizeof(up), (unsigned)(w->id * 100 + i));
		w->ok = azblob_blob_upload(w->c, container, name, up, sizeof(up)) == 0 &&
			azblob_blob_download(w->c, container, name, 0, down, sizeof(down), &len) == 0 &&
			len == sizeof(up) && memcmp(up, down, len) == 0;
	}
	/* This thread's failure is this thread's own. */
	w->ok = w->ok && azblob_blob_size(w->c, container, "threads/none", &size) == -ENOENT &&
		azblob_last_http_status() == 404;
	return NULL;
}

static void test_threads(azblob_client *c)
{
	pthread_t t[4];
	struct worker w[4];
	uint64_t size;
	int all = 1;

	/* The main thread's last error: a 409, kept while the workers fail with 404s. */
	CHECK_ERR(azblob_container_create(c, container), -EEXIST, 409, "ContainerAlreadyExists");
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ .c = c, .id = i };
		if (pthread_create(&t[i], NULL, work, &w[i]) != 0)
			all = 0, w[i].c = NULL;
	}
	for (int i = 0; i < 4; i++) {
		if (w[i].c)
			pthread_join(t[i], NULL);
		all = all && w[i].ok;
	}
	CHECK(all);
	CHECK(azblob_last_http_status() == 409 && strcmp(azblob_last_error_code(), "ContainerAlreadyExists") == 0);
	for (int i = 0; i < 4; i++) {
		char name[32];

		snprintf(name, sizeof(name), "threads/%d", i);
		all = all && azblob_blob_size(c, container, name, &size) == 0 && size == 65536 &&
		      azblob_blob_delete(c, container, name) == 0;
	}
	CHECK(all);
}

static void test_delete(azblob_client *c)
{
	int yes = -1;

	CHECK_OK(azblob_blob_delete(c, container, "dir/a.txt"));
	CHECK_ERR(azblob_blob_delete(c, container, "dir/a.txt"), -ENOENT, 404, "BlobNotFound");
	CHECK_OK(azblob_blob_exists(c, container, "dir/a.txt", &yes));
	CHECK(yes == 0);
	CHECK_OK(azblob_container_delete(c, container));
	CHECK_ERR(azblob_container_delete(c, container), -ENOENT, 404, "ContainerNotFound");
	CHECK_OK(azblob_container_exists(c, container, &yes));
	CHECK(yes == 0);
}

static void test_bad_credentials_and_endpoint(void)
{
	azblob_client *c = NULL;
	uint64_t size;

	/* Valid base64, wrong key: the service refuses the signature. */
	CHECK_OK(azblob_client_open_http(endpoint, NULL, "AAAAAAAAAAAAAAAAAAAAAA==", &c));
	CHECK_ERR(azblob_container_create(c, container), -EACCES, 403, "AuthenticationFailed");
	azblob_client_free(c);
	/* Nobody listens on port 1. */
	CHECK_OK(azblob_client_open_http("http://127.0.0.1:1/devstoreaccount1", NULL, NULL, &c));
	CHECK_ERR(azblob_blob_size(c, container, "b", &size), -ECONNREFUSED, 0, "");
	azblob_client_free(c);
}

int main(int argc, char **argv)
{
	azblob_client *c = NULL;
	int vsc = argc >= 2 && strcmp(argv[1], "--vsc") == 0;

	if (argc != 2 && !(vsc && argc == 3)) {
		fprintf(stderr, "usage: %s ENDPOINT (e.g. http://127.0.0.1:10000/devstoreaccount1)\n"
				"       %s --vsc [DEVICE]\n",
			argv[0], argv[0]);
		return 2;
	}
	endpoint = vsc ? (argc == 3 ? argv[2] : "/dev/azure_blob") : argv[1];
	snprintf(container, sizeof(container), "c-api-test-%ld", (long)getpid());
	printf("# libazure_blob %s against %s, container %s\n", azblob_version(), endpoint, container);

	test_basics();
	if (vsc) {
		CHECK_OK(azblob_client_open_vsc(endpoint, NULL, &c));
	} else {
		test_open_errors();
		CHECK_OK(azblob_client_open_http(endpoint, NULL, NULL, &c));
	}
	if (!c) {
		printf("%d passed, %d failed\n", passed, failed + 1);
		return 1;
	}
	test_null_arguments(c);
	test_containers(c);
	test_blobs(c);
	test_listing(c);
	if (vsc) {
		test_raw_on_vsc(c);
	} else {
		test_raw_on_http(c);
		test_vsc_plumbing();
	}
	test_threads(c);
	test_delete(c);
	if (!vsc)
		test_bad_credentials_and_endpoint();
	azblob_client_free(c);

	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
