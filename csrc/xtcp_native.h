/*
 * xtcp_uring native API: everything Python calls through cffi, and nothing else.
 * cffi_build.py passes the block between BEGIN CDEF and END CDEF to ffi.cdef(), so keep it
 * plain C declarations; constants are `#define NAME ...` there and take their value here.
 * C takes buffers and lengths, returns a count or -errno, and never calls into Python.
 */
#ifndef XTCP_NATIVE_H
#define XTCP_NATIVE_H

#include <stddef.h>
#include <stdint.h>

#include "generated/xtcp_record.h"

/* Bumped whenever a declaration below changes; native.py refuses a stale build. */
#define XTCP_NATIVE_ABI 7

#define XTCP_TCP_INFO_MAX 280          /* sizeof(struct tcp_info) on 6.18 .. 7.0 */
#define XTCP_TCP_INFO_LAYOUT_6_18 0    /* bytes 276..279: u16 accecn_fail_mode, u16 accecn_opt_seen */
#define XTCP_TCP_INFO_LAYOUT_7_0 1     /* bytes 276..279: ecn_mode:2 opt_seen:2 fail_mode:4 options2:24 */

#define XTCP_FRAME_SINGLE 0            /* one bare message (n must be 1) */
#define XTCP_FRAME_DELIMITED 1         /* varint length + message, repeated */
#define XTCP_FRAME_ENVELOPE_ROWS 2     /* Envelope.row entries: tag 0x0a, varint length, message */

#define XTCP_ATTR_TYPES 64             /* unknown attribute counters are kept per type below this */

/* BEGIN CDEF */
struct xtcp_decode_stats {
    uint64_t messages;            /* netlink messages walked */
    uint64_t records;             /* socket records written */
    uint64_t consumed;            /* bytes walked; where to resume when `out` was full */
    uint64_t other_messages;      /* NOOP, OVERRUN, echoed requests, foreign types: skipped */
    uint64_t short_messages;      /* SOCK_DIAG payload shorter than inet_diag_msg: skipped */
    uint64_t bad_attributes;      /* rta_len lying about its size: rest of that message skipped */
    uint64_t short_attributes;    /* attribute smaller than its struct: ignored */
    uint64_t unknown_attributes;  /* attribute types this decoder does not know: counted */
    uint64_t tcp_info_longer;     /* INFO payloads beyond 280 B (a newer kernel): tail ignored */
    uint64_t rejected_seq;        /* messages of another nlmsg_seq than the dump's (the rest of an
                                     abandoned dump, or forged): dropped, never decoded */
    uint64_t rejected_malformed;  /* buffers whose walk stopped at a lying nlmsg_len or a cut
                                     header: the rest of that buffer dropped */
    uint64_t unknown_by_type[64]; /* per attribute type (type >= 63 counted at 63) */
    int32_t done;                 /* 1 once NLMSG_DONE was seen */
    int32_t error;                /* errno carried by NLMSG_ERROR (positive), 0 if none */
    int32_t malformed;            /* 1 if a walk stopped at a bad nlmsg_len (rejected_malformed) */
    uint32_t malformed_offset;    /* byte offset of the first such message in its buffer */
};

int xtcp_native_abi(void);
size_t xtcp_record_size(void);
size_t xtcp_record_max_encoded(void);

/* Upper bound of the records xtcp_decode would write for buf: a cheap walk of nlmsghdrs only,
 * so callers allocate once instead of guessing (TIME_WAIT messages are 88 B, full ones ~520 B). */
size_t xtcp_count_socket_messages(const uint8_t *buf, size_t len);

/* Decode netlink messages in buf[0..len) into out[0..cap). Returns records written, or
 * -ENOSPC if out filled up first (size it with xtcp_count_socket_messages).
 * Only messages with nlmsg_seq == seq count (seq < 0: any, e.g. for captures).
 * Stops at NLMSG_DONE, NLMSG_ERROR or a malformed header. stats accumulates over calls, so
 * the buffers of one dump share one struct; done/error/malformed say what any call met. */
int64_t xtcp_decode(const uint8_t *buf, size_t len, struct xtcp_record *out, size_t cap,
                    int tcp_info_layout, int64_t seq, struct xtcp_decode_stats *stats);

/* Exact bytes xtcp_encode writes for recs[0..n) with a label of label_len bytes. */
int64_t xtcp_encoded_size(const struct xtcp_record *recs, size_t n, size_t label_len, int framing);

/* Encode recs[0..n) as protobuf, each message = label bytes + the record's fields.
 * Writes whole records only; *encoded says how many fit. Returns bytes written or -errno. */
int64_t xtcp_encode(const struct xtcp_record *recs, size_t n, const uint8_t *label,
                    size_t label_len, int framing, uint8_t *out, size_t cap, size_t *encoded);
/* The longest run of whole frames at the start of buf (XTCP_FRAME_DELIMITED or
 * XTCP_FRAME_ENVELOPE_ROWS bytes, as xtcp_encode writes them) holding at most max_records
 * frames and max_bytes bytes (0: no limit), but at least one frame. Returns its length in
 * bytes and sets *records; 0 for an empty buf; -EBADMSG if a frame runs past the end or its
 * varint is malformed, -EINVAL for another framing. Splits encoded bytes into messages
 * without encoding them again. */
int64_t xtcp_frames_prefix(const uint8_t *buf, size_t len, int framing, size_t max_records,
                           size_t max_bytes, size_t *records);
/* END CDEF */

#endif
