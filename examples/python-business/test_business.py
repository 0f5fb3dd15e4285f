"""Unit tests of the example's signature check: python3 -m unittest test_business.py"""

import hashlib
import hmac
import unittest

from business import Verifier

SECRET = "python-example-webhook-secret"
BODY = b'{"events":[]}'
TS = "1700000000"
# HMAC-SHA256("1700000000." + body), as Plato signs it (internal/bizlink TestSignVector pins the same).
SIG = "v1=66ab7ba3fea8aee749ffbcee0c2a0d6b6ba7b3c635ab153f82a32c2ea389efc5"


class VerifierTest(unittest.TestCase):
    def test_accepts_a_fresh_request_once(self):
        v = Verifier(SECRET)
        self.assertIsNone(v.check(TS, SIG, BODY, now=1700000060))
        self.assertEqual(v.check(TS, SIG, BODY, now=1700000061), "replayed request")

    def test_refuses_what_is_not_plato(self):
        v = Verifier(SECRET)
        self.assertEqual(v.check(TS, SIG, b'{"events":[{}]}', now=1700000000), "bad signature")
        self.assertEqual(v.check("1700000001", SIG, BODY, now=1700000000), "bad signature")
        self.assertEqual(v.check(TS, SIG[3:], BODY, now=1700000000), "bad signature")
        self.assertEqual(v.check(TS, None, BODY, now=1700000000), "bad signature")
        self.assertEqual(v.check(None, SIG, BODY, now=1700000000), "no valid X-Plato-Timestamp")
        self.assertEqual(Verifier("another-secret-16").check(TS, SIG, BODY, now=1700000000), "bad signature")

    def test_refuses_a_stale_or_future_timestamp(self):
        v = Verifier(SECRET)
        self.assertEqual(v.check(TS, SIG, BODY, now=1700000000 + 301), "timestamp too far from now")
        self.assertEqual(v.check(TS, SIG, BODY, now=1700000000 - 301), "timestamp too far from now")

    def test_forgets_signatures_after_the_tolerance(self):
        v = Verifier(SECRET)
        self.assertIsNone(v.check(TS, SIG, BODY, now=1700000000))
        later = str(1700000000 + 400)
        sig = "v1=" + hmac.new(SECRET.encode(), later.encode() + b"." + BODY, hashlib.sha256).hexdigest()
        self.assertIsNone(v.check(later, sig, BODY, now=1700000000 + 400))  # prunes the first
        self.assertEqual(list(v.seen), [sig])


if __name__ == "__main__":
    unittest.main()
