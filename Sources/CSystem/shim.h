/* One C module for every system header presenced uses (liburing, hiredis, OpenSSL, epoll).
 * Order matters: liburing.h defines _XOPEN_SOURCE, so the libc headers come first
 * (docs/architecture.md, "Platform notes"). Static inline helpers stand in for macros Swift cannot
 * import. */
#ifndef PRESENCED_CSYSTEM_SHIM_H
#define PRESENCED_CSYSTEM_SHIM_H

#if __has_include(<SwiftGlibc.h>)
#include <SwiftGlibc.h>
#else
#include <features.h>
#endif
#include <sys/types.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <malloc.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <openssl/err.h>

/* ---- io_uring: flags and macros Swift cannot import ---- */
static inline unsigned char cs_iosqe_buffer_select(void) { return IOSQE_BUFFER_SELECT; }
static inline unsigned char cs_iosqe_cqe_skip_success(void) { return IOSQE_CQE_SKIP_SUCCESS; }
static inline unsigned int cs_cqe_f_more(void) { return IORING_CQE_F_MORE; }
static inline unsigned int cs_cqe_f_buffer(void) { return IORING_CQE_F_BUFFER; }
static inline unsigned int cs_cqe_buffer_shift(void) { return IORING_CQE_BUFFER_SHIFT; }

/* Peeks up to `max` ready completions into `out` without waiting; returns how many. */
static inline unsigned cs_uring_peek_batch(struct io_uring *ring, struct io_uring_cqe **out, unsigned max) {
    return io_uring_peek_batch_cqe(ring, out, max);
}

/* Sets the provided-buffer group of a prepared SQE and asks the kernel to pick a buffer. */
static inline void cs_sqe_select_buffer(struct io_uring_sqe *sqe, unsigned short group) {
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
}

/* Size in bytes of a provided-buffer ring with `entries` slots. */
static inline size_t cs_buf_ring_bytes(unsigned entries) {
    return (size_t)entries * sizeof(struct io_uring_buf);
}

/* ---- epoll: event field accessors (the struct is packed on x86_64) ---- */
static inline void cs_epoll_event_set(struct epoll_event *ev, uint32_t events, uint64_t data) {
    ev->events = events;
    ev->data.u64 = data;
}
static inline uint32_t cs_epoll_event_events(const struct epoll_event *ev) { return ev->events; }
static inline uint64_t cs_epoll_event_data(const struct epoll_event *ev) { return ev->data.u64; }

/* accept4 is not in Swift's Glibc module. */
static inline int cs_accept4(int fd, int flags) { return accept4(fd, NULL, NULL, flags); }

/* Names the calling thread (prctl is variadic, so Swift cannot call it). */
static inline int cs_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

/* ---- OpenSSL ---- */
static inline void cs_openssl_free(void *p) { CRYPTO_free(p, __FILE__, __LINE__); }

#endif

/* ---- OpenSSL over memory BIOs (TLSClientEngine) ---- */
#ifndef PRESENCED_CSYSTEM_SHIM_TLS_ENGINE
#define PRESENCED_CSYSTEM_SHIM_TLS_ENGINE
/* SSL_set_mode is a macro (SSL_ctrl with SSL_CTRL_MODE); returns the new mode bits. */
static inline long cs_ssl_set_mode(SSL *ssl, long mode) { return SSL_set_mode(ssl, mode); }
/* SSL_CTX_set_min_proto_version is a macro (SSL_CTX_ctrl with SSL_CTRL_SET_MIN_PROTO_VERSION);
 * `version` is e.g. TLS1_2_VERSION. Returns 1 on success. */
static inline long cs_ssl_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, version, NULL);
}
/* SSL_set_tlsext_host_name is a macro (SSL_ctrl with SSL_CTRL_SET_TLSEXT_HOSTNAME and
 * TLSEXT_NAMETYPE_host_name): the server name sent as SNI. Returns 1 on success. */
static inline long cs_ssl_set_tlsext_host_name(SSL *ssl, const char *name) {
    return SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)name);
}
/* SSL_OP_NO_RENEGOTIATION is built with SSL_OP_BIT, which Swift cannot import. */
static inline uint64_t cs_ssl_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }
#endif
