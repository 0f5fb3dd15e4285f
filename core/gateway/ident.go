package gateway

import "strings"

// A connection's identity is kept in one string, its did index key (appID "\x00" did), which its
// app ID and did slice: one allocation per logged-in connection where the Login's two strings and
// the index key took three. A uid equal to the did (as most devices' are) shares it too.

// setIdentityLocked sets c's app ID, did and uid. c.mu is held, or c is not published yet.
func (c *conn) setIdentityLocked(appID, did, uid string) {
	c.key = didKey(appID, did)
	if uid == did {
		uid = c.did()
	}
	c.uid = uid
}

// appID is the app c logged in to; "" before a Login.
func (c *conn) appID() string {
	i := strings.IndexByte(c.key, 0)
	if i < 0 {
		return ""
	}
	return c.key[:i]
}

// did is the device c logged in as; "" before a Login.
func (c *conn) did() string {
	i := strings.IndexByte(c.key, 0)
	if i < 0 {
		return ""
	}
	return c.key[i+1:]
}
