/*
 * mfa/qr: the QR code of a text as a standalone SVG document. libqrencode gives the module
 * matrix; the drawing is ours: each row's runs of dark modules become rectangles of one
 * path, in module units, scaled by the width/height attributes. Nothing is shared between
 * calls (libqrencode's encoder is reentrant when built with pthreads, as Debian's is).
 */
#include "mfa/mfa.h"

#include <qrencode.h>
#include <stdlib.h>

/* ISO/IEC 18004 asks for a 4-module light margin around the symbol. */
#define QUIET 4
/* Pixels per module: large enough for a phone camera off a screen. */
#define PX_PER_MODULE 8

char *lt_mfa_qr_svg(const char *text, size_t *len)
{
    QRcode *qr = NULL;
    lt_buf_t b = LT_BUF_INIT;

    if (!text || !len)
        return NULL;
    /* Case sensitive, or lower-case letters would be turned into upper case. */
    qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return NULL;
    int w = qr->width, side = w + 2 * QUIET;
    if (lt_buf_appendf(&b,
                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                       "shape-rendering=\"crispEdges\">\n"
                       "<rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>\n"
                       "<path fill=\"#000\" d=\"",
                       side, side, side * PX_PER_MODULE, side * PX_PER_MODULE, side, side) != 0)
        goto fail;
    for (int y = 0; y < w; y++) {
        const unsigned char *row = qr->data + (size_t)y * (size_t)w;
        for (int x = 0; x < w;) {
            /* Bit 0 of each module byte is its colour (1 = dark); the rest is encoder info. */
            if (!(row[x] & 1)) {
                x++;
                continue;
            }
            int run = 1;
            while (x + run < w && (row[x + run] & 1))
                run++;
            if (lt_buf_appendf(&b, "M%d %dh%dv1h-%dz", x + QUIET, y + QUIET, run, run) != 0)
                goto fail;
            x += run;
        }
    }
    if (lt_buf_appends(&b, "\"/>\n</svg>\n") != 0)
        goto fail;
    QRcode_free(qr);
    *len = b.len;
    return b.base;
fail:
    QRcode_free(qr);
    lt_buf_free(&b);
    return NULL;
}
