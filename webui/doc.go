// Package webui is the rescue's web page: one page, served on the board's
// network, from which a person with a laptop or a phone and no tools
// recovers the device. It shows what the device is, why the rescue runs
// and what it is doing; it takes a bundle upload and streams it into the
// install engine as it arrives, showing the upload and the install live;
// it offers a factory reset behind a confirmation and the reboot into
// production. docs/web.md is the user's side of it.
//
// The page is three small files embedded in the binary (no framework, no
// external assets: the rescue has no internet), about 12 kB; the server
// is net/http's. What it adds to the rescue image is in docs/BENCHMARKS.md
// (bench/websize.sh measures it).
//
// # Streaming
//
// PUT /api/bundle takes the bundle file as the request body (the page
// sends the File object, which the browser streams from disk) and hands
// the body, as an io.Reader, to Device.Install. Nothing is kept: the
// bundle reader checks the signature before anything else, and every
// chunk is verified before it is written, as with any other source. A
// body cut short (the connection dropped, or silent for
// Config.StallTimeout) reads as a truncated bundle; the engine stops at
// the chunk it could not complete, and the server waits for the next
// upload. One install, factory reset or reboot runs at a time: another is
// refused with 409 Conflict and says which one runs.
//
// Progress reaches the page as Server-Sent Events (GET /api/events): the
// install's own events (install.Event, as docs/cli.md "Events" describes
// them), the bytes received, and the job's start and end. A page that
// connects late gets the current job's events again.
//
// # Access
//
// Reading the page needs nothing. Installing, resetting and rebooting
// need a session, which a one-time code opens: New makes it (8 characters
// of Crockford base32, 40 bits) and the rescue prints it on its console
// (Announce); the page never shows it. A board profile may set a password
// instead (boards.Web.PasswordHash, a PBKDF2 hash). Wrong codes slow the
// next tries, per client (after FreeTries, waits doubling up to
// MaxBackoff) and in all (GlobalBurst, then one every GlobalEvery), so
// that an attacker with many addresses cannot guess either. The session
// is an HttpOnly, SameSite=Strict cookie; requests that change anything
// must come from the page itself (Sec-Fetch-Site, else Origin against
// Host: net/http's CrossOriginProtection), and requests naming a host
// other than an address, localhost or a .local name are refused (DNS
// rebinding).
//
// # The rescue's side
//
// The rescue owns the policy: whether the page is served (the profile's
// web.enable, the kernel's lifeboat.web=; by default for a recovery a
// person asked for with the button, and once every source has failed),
// and what its Device does. Once its network is up it calls:
//
//	srv, err := webui.New(webui.Config{Device: dev, Password: hash, Logf: console})
//	err = srv.Start(ctx, ":80")
//	name := mdns.HostName(board.Name, serial)         // serial: mdns.Serial("/"), else the first MAC in hex
//	r, err := mdns.Start(ctx, mdns.Config{Name: name}) // where the network allows
//	srv.Announce(addrs, r.Name())                      // the URLs and the code, on the console
//
// and then, while it runs: srv.Observe among the observers of the
// installs it runs from its own sources (the page shows those too), and
// srv.StatusChanged whenever what Device.Status says changes. Its Device
// implements Install as its own install from a source does, on
// bundle.NewReader(u.Body, trust), returning ErrBusy while it installs or
// resets on its own; after a good install from the page it stops trying
// its sources and waits for the page's reboot (Device.Reboot).
package webui
