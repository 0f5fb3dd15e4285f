package gateway

// HeartbeatInFlight reports whether connection id of gw has a heartbeat the state server has not
// answered (false when gw does not hold it).
func HeartbeatInFlight(gw *Gateway, id uint64) bool {
	c := gw.conns.get(id)
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hbInFlight
}
