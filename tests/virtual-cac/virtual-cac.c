/*
 * virtual-cac: a legacy CAC (GSC-IS 2.1, no PIV applet) for tests. It runs Debian's libcacard,
 * the CAC emulation QEMU uses, over certificates and keys in an NSS database, and plugs it into
 * vsmartcard's vpcd the way tests/virtual-piv does for PIV.
 *
 *   virtual-cac PORT NSS_DB_DIR
 *
 * The database holds three certificates with their keys, nicknamed cert1 (ID), cert2 (email
 * signature) and cert3 (email encryption). With an empty database password any PIN is
 * accepted; with a password, that password is the PIN (a wrong one answers 6985).
 *
 * Kill the process to pull the card out; start it again to put it back.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libcacard.h>

#define READER_NAME "CACBridge virtual CAC"

/* vpcd control codes (a 1-byte message). */
enum { VPCD_OFF = 0, VPCD_ON = 1, VPCD_RESET = 2, VPCD_ATR = 4 };

static int read_exact(int fd, unsigned char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        /* vpcd writes the length and the body separately without TCP_NODELAY: ask for quick
         * ACKs or every APDU waits for the delayed-ACK timer (~40 ms). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int send_message(int fd, const unsigned char *data, size_t len)
{
    unsigned char frame[2 + 4096];
    if (len > sizeof frame - 2)
        return -1;
    frame[0] = (unsigned char)(len >> 8);
    frame[1] = (unsigned char)len;
    memcpy(frame + 2, data, len);
    /* One write per reply: a split reply costs another delayed ACK. */
    return write(fd, frame, len + 2) == (ssize_t)(len + 2) ? 0 : -1;
}

static int connect_vpcd(int port)
{
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        close(fd);
        usleep(100 * 1000);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT NSS_DB_DIR\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    char options[1024];
    snprintf(options, sizeof options,
             "db=\"sql:%s\" use_hw=no soft=(," READER_NAME ",CAC,,cert1,cert2,cert3)", argv[2]);
    VCardEmulOptions *opts = vcard_emul_options(options);
    if (opts == NULL || vcard_emul_init(opts) != VCARD_EMUL_OK) {
        fprintf(stderr, "virtual-cac: libcacard could not start on %s\n", argv[2]);
        return 1;
    }
    VReader *reader = vreader_get_reader_by_name(READER_NAME);
    if (reader == NULL) {
        fprintf(stderr, "virtual-cac: no emulated reader\n");
        return 1;
    }

    /* vpcd asks for the ATR hundreds of times to poll for presence: answer from a copy taken
     * at power-on, since powering on again would reset the applets and log the PIN out. */
    unsigned char atr[64];
    int atr_len = sizeof atr;
    vreader_power_on(reader, atr, &atr_len);

    for (;;) {
        int fd = connect_vpcd(port);
        fprintf(stderr, "virtual-cac: inserted into vpcd port %d\n", port);
        for (;;) {
            unsigned char header[2], message[4096], response[4096];
            if (read_exact(fd, header, 2) != 0)
                break;
            size_t len = ((size_t)header[0] << 8) | header[1];
            if (len == 0 || len > sizeof message || read_exact(fd, message, len) != 0)
                break;
            if (len == 1) {
                switch (message[0]) {
                case VPCD_OFF:
                    vreader_power_off(reader);
                    break;
                case VPCD_ON:
                case VPCD_RESET:
                    atr_len = sizeof atr;
                    vreader_power_on(reader, atr, &atr_len);
                    break;
                case VPCD_ATR:
                    if (send_message(fd, atr, (size_t)atr_len) != 0)
                        goto disconnected;
                    break;
                default:
                    break;
                }
                continue;
            }
            int response_len = sizeof response;
            if (vreader_xfr_bytes(reader, message, (int)len, response, &response_len) != VREADER_OK) {
                response[0] = 0x6F;
                response[1] = 0x00;
                response_len = 2;
            }
            if (send_message(fd, response, (size_t)response_len) != 0)
                break;
        }
    disconnected:
        close(fd);
        fprintf(stderr, "virtual-cac: vpcd connection ended; reconnecting\n");
    }
}
