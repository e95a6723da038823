package proto

// WatchSubsystem is the SSH subsystem on which the agent streams the
// guest's listening TCP sockets: one ListenSnapshot JSON line at once, then
// one after every change (the agent watches /proc/net/tcp{,6} itself; the
// host never polls). The host sends nothing; closing the channel ends it.
const WatchSubsystem = "banger-ports-watch"

// MaxWatchListeners bounds the listeners of one snapshot (the host refuses
// a larger one).
const MaxWatchListeners = 4096

// ListenSnapshot is every listening TCP socket of the guest.
type ListenSnapshot struct {
	Listeners []Listener `json:"listeners"`
}

// Listener is one listening TCP socket.
type Listener struct {
	BindAddress string `json:"bind_address"`
	Port        int    `json:"port"`
}
