/*
 * struct xtcp_record -> protobuf bytes. The field-by-field encoder is generated from the
 * .proto into xtcp_record.h; this file only frames messages. Labels (namespace, host, poll)
 * are the same for every socket of a dump, so Python encodes them once and they are copied
 * in front of each record's fields: field order does not matter to protobuf parsers.
 */
#include <errno.h>
#include <string.h>

#include "xtcp_native.h"

int64_t xtcp_encoded_size(const struct xtcp_record *recs, size_t n, size_t label_len, int framing)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t body = label_len + xtcp_record_encoded_size(&recs[i]);
        if (framing == XTCP_FRAME_SINGLE)
            total += body;
        else
            total += (framing == XTCP_FRAME_ENVELOPE_ROWS) + xtcp_pb_varint_len(body) + body;
    }
    return (int64_t)total;
}

int64_t xtcp_encode(const struct xtcp_record *recs, size_t n, const uint8_t *label,
                    size_t label_len, int framing, uint8_t *out, size_t cap, size_t *encoded)
{
    /* Each body is written once, behind a gap for its length sized for the largest possible
     * record, and moved back only when its length came out shorter (a tiny record). */
    const size_t gap = framing == XTCP_FRAME_SINGLE ? 0 : xtcp_pb_varint_len(label_len + XTCP_RECORD_MAX_ENCODED);
    const size_t worst = (framing == XTCP_FRAME_ENVELOPE_ROWS) + gap + label_len + XTCP_RECORD_MAX_ENCODED;
    uint8_t *p = out, *end = out + cap;
    size_t i;

    if (framing != XTCP_FRAME_SINGLE && framing != XTCP_FRAME_DELIMITED &&
        framing != XTCP_FRAME_ENVELOPE_ROWS)
        return -EINVAL;
    if (framing == XTCP_FRAME_SINGLE && n > 1)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        if ((size_t)(end - p) < worst) {
            /* Near the end of an exactly sized buffer: does this record really fit? */
            size_t body = label_len + xtcp_record_encoded_size(&recs[i]);
            size_t need = framing == XTCP_FRAME_SINGLE
                              ? body
                              : (framing == XTCP_FRAME_ENVELOPE_ROWS) + xtcp_pb_varint_len(body) + body;
            if ((size_t)(end - p) < need)
                break;
            /* The size is known now: the length goes first, the body right behind it. */
            if (framing == XTCP_FRAME_ENVELOPE_ROWS)
                *p++ = 0x0a;
            if (framing != XTCP_FRAME_SINGLE)
                p = xtcp_pb_varint(p, body);
            memcpy(p, label, label_len);
            p = xtcp_record_encode_fields(&recs[i], p + label_len);
            continue;
        }
        if (framing == XTCP_FRAME_SINGLE) {
            memcpy(p, label, label_len);
            p = xtcp_record_encode_fields(&recs[i], p + label_len);
            continue;
        }
        if (framing == XTCP_FRAME_ENVELOPE_ROWS)
            *p++ = 0x0a; /* Envelope.row = 1, length-delimited */
        uint8_t *body = p + gap;
        memcpy(body, label, label_len);
        uint8_t *body_end = xtcp_record_encode_fields(&recs[i], body + label_len);
        size_t body_len = (size_t)(body_end - body);
        size_t vlen = xtcp_pb_varint_len(body_len);
        p = xtcp_pb_varint(p, body_len);
        if (vlen < gap)
            memmove(p, body, body_len);
        p += body_len;
    }
    *encoded = i;
    return (int64_t)(p - out);
}

int64_t xtcp_frames_prefix(const uint8_t *buf, size_t len, int framing, size_t max_records,
                           size_t max_bytes, size_t *records)
{
    size_t off = 0, n = 0;
    *records = 0;
    if (framing != XTCP_FRAME_DELIMITED && framing != XTCP_FRAME_ENVELOPE_ROWS)
        return -EINVAL;
    while (off < len && (!max_records || n < max_records)) {
        size_t p = off + (framing == XTCP_FRAME_ENVELOPE_ROWS);
        if (framing == XTCP_FRAME_ENVELOPE_ROWS && buf[off] != 0x0a)
            return -EBADMSG;
        uint64_t body = 0;
        for (unsigned shift = 0;; shift += 7) {
            if (p >= len || shift > 35)
                return -EBADMSG;
            uint8_t b = buf[p++];
            body |= (uint64_t)(b & 0x7f) << shift;
            if (!(b & 0x80))
                break;
        }
        if (body > len - p)
            return -EBADMSG;
        size_t end = p + (size_t)body;
        if (max_bytes && end > max_bytes && n > 0)
            break;   /* the first frame always goes, even when it alone is too big */
        off = end;
        n++;
    }
    *records = n;
    return (int64_t)off;
}
