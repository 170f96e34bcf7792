# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_chatctl_global_optspecs
    string join \n s/server= n/name= timeout= json q/quiet v/verbose color= h/help V/version
end

function __fish_chatctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_chatctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_chatctl_using_subcommand
    set -l cmd (__fish_chatctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c chatctl -n "__fish_chatctl_needs_command" -s s -l server -d 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)' -r
complete -c chatctl -n "__fish_chatctl_needs_command" -s n -l name -d 'Name to join the room with [default: asked on a TTY, else the login name]' -r
complete -c chatctl -n "__fish_chatctl_needs_command" -l timeout -d 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`' -r
complete -c chatctl -n "__fish_chatctl_needs_command" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_needs_command" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_needs_command" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_needs_command" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_needs_command" -s h -l help -d 'Print help'
complete -c chatctl -n "__fish_chatctl_needs_command" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "completions" -d 'Print a completion script for SHELL to standard output'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "join" -d 'Join the room interactively'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "say" -d 'Send a message to everyone in the room'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "whisper" -d 'Send a private message to one user'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "list" -d 'List the other users in the room, or with files (or --files) the files on offer'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "fetch" -d 'Download files from the server (UDP by default, as the original client)'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "serve" -d 'Run the room server'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "capture-decode" -d 'Decode the chat in a pcap or pcapng capture, and rebuild downloaded files'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "impair" -d 'Relay UDP between clients and a target through seeded impairments'
complete -c chatctl -n "__fish_chatctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c chatctl -n "__fish_chatctl_using_subcommand completions" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand completions" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand completions" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand completions" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l count -d 'Leave after N updates that match the filters' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l for -d 'Leave after DURATION (e.g. `30s`); exit 9 if nothing matched by then' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l from -d 'Only messages (private or public) from NAME' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l match -d 'Only messages whose text matches REGEX (Rust regex syntax)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l max-line -d 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l reconnect-max -d 'The longest wait between two --reconnect attempts' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -s s -l server -d 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -s n -l name -d 'Name to join the room with [default: asked on a TTY, else the login name]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l timeout -d 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l private -d 'Only private messages'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l reconnect -d 'When the server goes away, join again with the same name (exponential backoff with jitter; one line per attempt on stderr) and send the lines read meanwhile, in order (at most 10,000 wait; past that the oldest are dropped and counted). A line whose confirmation was lost is sent again. Ctrl-C ends it at once. Without it, a server that goes away ends the command at once (exit 12)'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l detach -d 'Run the session in the background (for bots and scripts) and return once it has joined; one-shot commands with the same server and name go through it. `join --stop` ends it'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l stop -d 'End the session a `join` (e.g. `join --detach`) runs for this server and name: it leaves the room, then this returns'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand join" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -l max-line -d 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -l reconnect-max -d 'The longest wait between two --reconnect attempts' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -s s -l server -d 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -s n -l name -d 'Name to join the room with [default: asked on a TTY, else the login name]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -l timeout -d 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -l reconnect -d 'When the server goes away, join again with the same name (exponential backoff with jitter; one line per attempt on stderr) and send the lines read meanwhile, in order (at most 10,000 wait; past that the oldest are dropped and counted). A line whose confirmation was lost is sent again. Ctrl-C ends it at once. Without it, a server that goes away ends the command at once (exit 12)'
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand say" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -l max-line -d 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -s s -l server -d 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -s n -l name -d 'Name to join the room with [default: asked on a TTY, else the login name]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -l timeout -d 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand whisper" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s s -l server -d 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s n -l name -d 'Name to join the room with [default: asked on a TTY, else the login name]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -l timeout -d 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -l files -d 'List the server\'s files instead of its users (as list files)'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand list" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s o -l output -d 'Where to write [default: the current folder]. With one FILE: that file\'s name, or an existing folder (or a path ending in `/`) to put it in. With several: a folder, created if missing; each file keeps its name' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l udp-via -d 'Send UDP downloads through a relay at ADDR:PORT (e.g. `chatctl impair --target SERVER:TRANSFER-PORT`) instead of to the announced port. With `serve --ports LO-HI` the server\'s ports are predictable: for one user, LO is the update port and LO+1 the first transfer port' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l trace -d 'Write one JSON line per progress tick of a fast download (bytes, RTT, window estimate, holes, late bytes) to FILE, for plots' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l retry -d 'Try again up to N times when the server has no transfer port free (4062), cannot be reached, or the connection or a download is lost, waiting 1s, 2s, 4s... (at most 60s) in between, as curl\'s --retry. Files already fetched are kept, and an interrupted fast download resumes where it stopped' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l retry-delay -d 'Wait this long before each retry instead of the growing backoff (as curl\'s --retry-delay), e.g. `500ms`, `2s`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s s -l server -d 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s n -l name -d 'Name to join the room with [default: asked on a TTY, else the login name]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l timeout -d 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l udp -d 'Download over reliable UDP (the default)'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l tcp -d 'Download over TCP'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s f -l force -d 'Overwrite existing files'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s c -l continue -d 'Resume an interrupted fast UDP download where it stopped: from the partial file it left and the mark beside it (`.NAME.chatctl-resume`, how far the file is good), fetching again at most what was in flight. A file already complete is success ("already complete"), as wget -c. Fast mode only: TCP and classic go-back-N carry no offset, so this is refused with --tcp or --classic, and a server that answers in classic mode sends the file from the start (with a note on stderr)'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l classic -d 'UDP with the classic go-back-N only (no fast-mode hello)'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand fetch" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l listen -d 'Address to listen on (IPv6 accepted, e.g. `[::]:13337`)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l files -d 'Folder whose regular files can be downloaded [default: none]' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l ports -d 'Pool of ports for update connections and transfers: LO-HI, or `0` for ports the OS assigns (at most 31 at once; `0-N`: at most N)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l max-users -d 'Most users in the room; above 10, classic clients cannot read the user lists' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l join-timeout -d 'How long a joining client has to open its update connection' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l unjoined-timeout -d 'How long a new connection (or one that left) may stay without joining' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l max-unjoined-per-host -d 'Most connections that have not joined from one IP address' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l max-connections -d 'Most connections in all, joined or not' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l max-transfers-per-user -d 'Most downloads one user may have in flight (more: `4062`)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l cc -d 'Congestion controller of fast UDP downloads' -r -f -a "cubic\t'RFC 9438 CUBIC'
newreno\t'RFC 5681/6582 NewReno'
bbr\t'BBR (v1-style, model based: random loss does not slow it down)'"
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l max-datagram -d 'Largest fast-mode datagram, in bytes. Without it the server starts at 1452 and probes larger sizes (65,000 at once on loopback); with it, exactly this size and no probing, e.g. `--max-datagram 1452` to behave as on a 1500-byte-MTU path through `chatctl impair` on loopback' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l trace -d 'Write one JSON line per fast-mode sender event (send, ack, loss, rto, cwnd; with the transfer port) to FILE, for plots' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l log-format -d 'Log line format on stderr (`--json` is `--log-format json`)' -r -f -a "text\t''
json\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand serve" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l port -d 'Also treat this TCP port as a server port (13337 always is); repeatable' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l extract -d 'Rebuild every downloaded file into this folder and list on stdout what was written where (one JSON object per file with --json). Files are named after the requested file (`NAME.1`, `NAME.2` for more copies); one whose size does not match its `206`, or in fast mode whose hash (BLAKE3 or XXH3-128, by the transfer\'s format) does not match the sender\'s, gets a `.incomplete` suffix. Nothing is overwritten. Only fast transfers carry a hash: a TCP or go-back-N file is reported as "size matches", a fast one as "verified"' -r -f -a "(__fish_complete_directories)"
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l plot -d 'Draw a time-sequence graph of each transfer (go-back-N: packet number, fast and TCP: byte offset, over time; with a title, axis ticks and a legend) and list on stdout the files written (one JSON object each with --json) and the transfers not plotted, with the reason (an empty file, nothing of it captured). TARGET is a folder (an existing one, or any path ending in `/`): `TARGET/transfer-<id>.svg`; or a file: NAME.svg or NAME.png (PNG by the extension; no extension means SVG) for one transfer, NAME-<id>.svg or NAME-<id>.png for several. Nothing is overwritten: a taken name gets a number, `NAME.1.png`' -r -F
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l timeline -d 'Print the timeline too with --extract or --plot (without them it is the default output)'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l summary -d 'Print a summary instead of the timeline: messages per kind, users seen, and a table of transfers'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand capture-decode" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l listen -d 'Address to listen on for the client, `HOST:PORT` (port 0: the OS picks; the start line on stderr says which)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l target -d 'Address to forward the client\'s datagrams to, `HOST:PORT` (a name such as `localhost:55001` is resolved once, at the start)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l loss -d 'Share of datagrams lost at random, in percent: `1%` or `1` (1%)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l burst -d 'After a loss, the chance the next datagram is lost too (bursts), in percent' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l delay -d 'One-way delay, e.g. `25ms`' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l jitter -d 'Extra random delay, uniform between 0 and this (it also reorders)' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l reorder -d 'Share of datagrams held back by half the delay plus 1 ms (reordering), in percent' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l duplicate -d 'Share of datagrams delivered twice, in percent' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l corrupt -d 'Share of datagrams with one bit flipped, in percent' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l rate -d 'Bottleneck rate: bits per second (`200M`, `200Mbit`, `1G`, `64k`) or bytes per second (`25MB/s`) [default: unlimited]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l queue -d 'Bottleneck queue (`100000`, `64kB`, `1MiB`); beyond it datagrams are dropped [default: one bandwidth-delay product, at least 64 KiB]' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l seed -d 'Seed of the random choices: the same seed and traffic give the same fate' -r
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l color -d 'When to use colour (NO_COLOR in the environment means never, unless `always`)' -r -f -a "auto\t''
always\t''
never\t''"
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -l json -d 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -s q -l quiet -d 'Print only errors'
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -s v -l verbose -d 'More detail; repeat for more (`-vv`)'
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c chatctl -n "__fish_chatctl_using_subcommand impair" -s V -l version -d 'Print version'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "completions" -d 'Print a completion script for SHELL to standard output'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "join" -d 'Join the room interactively'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "say" -d 'Send a message to everyone in the room'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "whisper" -d 'Send a private message to one user'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "list" -d 'List the other users in the room, or with files (or --files) the files on offer'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "fetch" -d 'Download files from the server (UDP by default, as the original client)'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "serve" -d 'Run the room server'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "capture-decode" -d 'Decode the chat in a pcap or pcapng capture, and rebuild downloaded files'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "impair" -d 'Relay UDP between clients and a target through seeded impairments'
complete -c chatctl -n "__fish_chatctl_using_subcommand help; and not __fish_seen_subcommand_from completions join say whisper list fetch serve capture-decode impair help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
