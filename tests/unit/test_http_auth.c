/* tests/unit/test_http_auth.c - where the /metrics token may come from: the Authorization header, nowhere else. */
#include "check.h"

#include "jobmanager/http.h"
#include "sage/error.h"

static void header_only(void)
{
    static const struct {
        const char *head;
        int rc;
        const char *auth; /* what the parser hands to the token check */
    } t[] = {
        {"GET /metrics HTTP/1.1\r\nAuthorization: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, "Bearer t"},
        {"GET /metrics HTTP/1.1\r\nAUTHORIZATION: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, "Bearer t"},
        {"GET /metrics HTTP/1.1\r\nauthorization:Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, "Bearer t"},
        /* the name must be the header's: not inside another header's value, not a longer name */
        {"GET /metrics HTTP/1.1\r\nX-Foo: Authorization: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, ""},
        {"GET /metrics HTTP/1.1\r\nX-Authorization: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, ""},
        {"GET /metrics HTTP/1.1\r\nAuthorizations: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, ""},
        {"GET /metrics HTTP/1.1\r\nHost: Authorization: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, ""},
        /* not in the target, not after the head */
        {"GET /metrics?Authorization:%20Bearer%20t HTTP/1.1\r\n\r\n", SAGE__HTTP_COMPLETE, ""},
        {"GET /metrics HTTP/1.1\r\n\r\nAuthorization: Bearer t\r\n\r\n", SAGE__HTTP_COMPLETE, ""},
        /* refused heads carry no token */
        {"GET /metrics HTTP/1.1\r\nAuthorization : Bearer t\r\n\r\n", SAGE_EPROTO, ""},
        {"GET /metrics HTTP/1.1\r\nX: y\r\n Authorization: Bearer t\r\n\r\n", SAGE_EPROTO, ""},
        {"GET /metrics HTTP/1.1\r\nAuthorization: Bearer t\r\nAuthorization: Bearer u\r\n\r\n", SAGE_EPROTO, ""},
        {"GET /metrics HTTP/1.1\nAuthorization: Bearer t\n\n", SAGE_EPROTO, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        sage__http_head h;
        int rc = sage__http_parse_head((const void *)t[i].head, strlen(t[i].head), &h);
        if (rc != t[i].rc || (rc == SAGE__HTTP_COMPLETE && strcmp(h.authorization, t[i].auth) != 0))
            fprintf(stderr, "  case %zu: rc %d, authorization \"%s\"\n", i, rc, h.authorization);
        CHECK_INT(rc, t[i].rc);
        if (rc == SAGE__HTTP_COMPLETE)
            CHECK_STR(h.authorization, t[i].auth);
    }
}

int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    RUN(header_only);
    return CHECK_DONE();
}
