/*
 * struct xtcp_record -> protobuf bytes. The field-by-field encoder is generated from the
 * .proto into xtcp_record.h; this file only frames messages. Labels (namespace, host, poll)
 * are the same for every socket of a dump, so Python encodes them once and they are copied
 * in front of each record's fields: field order does not matter to protobuf parsers.
 */
#include <errno.h>
#include <string.h>

#include "xtcp_native.h"

static size_t varint_len(size_t v)
{
    size_t n = 1;
    while (v >= 0x80) { v >>= 7; n++; }
    return n;
}

int64_t xtcp_encode(const struct xtcp_record *recs, size_t n, const uint8_t *label,
                    size_t label_len, int framing, uint8_t *out, size_t cap, size_t *encoded)
{
    /* Room for a tag, the length and the largest possible record. The length's room is sized
     * for that largest record, so the body moves back only when it came out shorter. */
    const size_t gap = varint_len(label_len + XTCP_RECORD_MAX_ENCODED);
    const size_t need = 1 + gap + label_len + XTCP_RECORD_MAX_ENCODED;
    uint8_t *p = out, *end = out + cap;
    size_t i;

    if (framing != XTCP_FRAME_SINGLE && framing != XTCP_FRAME_DELIMITED &&
        framing != XTCP_FRAME_ENVELOPE_ROWS)
        return -EINVAL;
    if (framing == XTCP_FRAME_SINGLE && n > 1)
        return -EINVAL;
    if (label_len + XTCP_RECORD_MAX_ENCODED >= (1u << 21))
        return -EMSGSIZE;
    for (i = 0; i < n; i++) {
        if ((size_t)(end - p) < need)
            break;
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
        size_t vlen = varint_len(body_len);
        p = xtcp_pb_varint(p, body_len);
        if (vlen < gap)
            memmove(p, body, body_len);
        p += body_len;
    }
    *encoded = i;
    return (int64_t)(p - out);
}
