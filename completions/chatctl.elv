
use builtin;
use str;

set edit:completion:arg-completer[chatctl] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'chatctl'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'chatctl'= {
            cand -s 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand --server 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand -n 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --name 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --timeout 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand completions 'Print a completion script for SHELL to standard output'
            cand join 'Join the room interactively'
            cand say 'Send a message to everyone in the room'
            cand whisper 'Send a private message to one user'
            cand list 'List the other users in the room, or with files (or --files) the files on offer'
            cand fetch 'Download files from the server (UDP by default, as the original client)'
            cand serve 'Run the room server'
            cand capture-decode 'Decode the chat in a pcap or pcapng capture, and rebuild downloaded files'
            cand impair 'Relay UDP between clients and a target through seeded impairments'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'chatctl;completions'= {
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;join'= {
            cand --count 'Leave after N updates that match the filters'
            cand --for 'Leave after DURATION (e.g. `30s`); exit 9 if nothing matched by then'
            cand --from 'Only messages (private or public) from NAME'
            cand --match 'Only messages whose text matches REGEX (Rust regex syntax)'
            cand --max-line 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)'
            cand --reconnect-max 'The longest wait between two --reconnect attempts'
            cand -s 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand --server 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand -n 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --name 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --timeout 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --private 'Only private messages'
            cand --reconnect 'When the server goes away, join again with the same name (exponential backoff with jitter; one line per attempt on stderr) and send the lines read meanwhile, in order (at most 10,000 wait; past that the oldest are dropped and counted). A line whose confirmation was lost is sent again. Ctrl-C ends it at once. Without it, a server that goes away ends the command at once (exit 12)'
            cand --detach 'Run the session in the background (for bots and scripts) and return once it has joined; one-shot commands with the same server and name go through it. `join --stop` ends it'
            cand --stop 'End the session a `join` (e.g. `join --detach`) runs for this server and name: it leaves the room, then this returns'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;say'= {
            cand --max-line 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)'
            cand --reconnect-max 'The longest wait between two --reconnect attempts'
            cand -s 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand --server 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand -n 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --name 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --timeout 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --reconnect 'When the server goes away, join again with the same name (exponential backoff with jitter; one line per attempt on stderr) and send the lines read meanwhile, in order (at most 10,000 wait; past that the oldest are dropped and counted). A line whose confirmation was lost is sent again. Ctrl-C ends it at once. Without it, a server that goes away ends the command at once (exit 12)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;whisper'= {
            cand --max-line 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)'
            cand -s 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand --server 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand -n 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --name 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --timeout 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;list'= {
            cand -s 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand --server 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand -n 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --name 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --timeout 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --files 'List the server''s files instead of its users (as list files)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;fetch'= {
            cand -o 'Where to write [default: the current folder]. With one FILE: that file''s name, or an existing folder (or a path ending in `/`) to put it in. With several: a folder, created if missing; each file keeps its name'
            cand --output 'Where to write [default: the current folder]. With one FILE: that file''s name, or an existing folder (or a path ending in `/`) to put it in. With several: a folder, created if missing; each file keeps its name'
            cand --udp-via 'Send UDP downloads through a relay at ADDR:PORT (e.g. `chatctl impair --target SERVER:TRANSFER-PORT`) instead of to the announced port. With `serve --ports LO-HI` the server''s ports are predictable: for one user, LO is the update port and LO+1 the first transfer port'
            cand --trace 'Write one JSON line per progress tick of a fast download (bytes, RTT, window estimate, holes, late bytes) to FILE, for plots'
            cand --retry 'Try again up to N times when the server has no transfer port free (4062), cannot be reached, or the connection or a download is lost, waiting 1s, 2s, 4s... (at most 60s) in between, as curl''s --retry. Files already fetched are kept, and an interrupted fast download resumes where it stopped'
            cand --retry-delay 'Wait this long before each retry instead of the growing backoff (as curl''s --retry-delay), e.g. `500ms`, `2s`'
            cand -s 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand --server 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)'
            cand -n 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --name 'Name to join the room with [default: asked on a TTY, else the login name]'
            cand --timeout 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --udp 'Download over reliable UDP (the default)'
            cand --tcp 'Download over TCP'
            cand -f 'Overwrite existing files'
            cand --force 'Overwrite existing files'
            cand -c 'Resume an interrupted fast UDP download where it stopped: from the partial file it left and the mark beside it (`.NAME.chatctl-resume`, how far the file is good), fetching again at most what was in flight. A file already complete is success ("already complete"), as wget -c. Fast mode only: TCP and classic go-back-N carry no offset, so this is refused with --tcp or --classic, and a server that answers in classic mode sends the file from the start (with a note on stderr)'
            cand --continue 'Resume an interrupted fast UDP download where it stopped: from the partial file it left and the mark beside it (`.NAME.chatctl-resume`, how far the file is good), fetching again at most what was in flight. A file already complete is success ("already complete"), as wget -c. Fast mode only: TCP and classic go-back-N carry no offset, so this is refused with --tcp or --classic, and a server that answers in classic mode sends the file from the start (with a note on stderr)'
            cand --classic 'UDP with the classic go-back-N only (no fast-mode hello)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;serve'= {
            cand --listen 'Address to listen on (IPv6 accepted, e.g. `[::]:13337`)'
            cand --files 'Folder whose regular files can be downloaded [default: none]'
            cand --ports 'Pool of ports for update connections and transfers: LO-HI, or `0` for ports the OS assigns (at most 31 at once; `0-N`: at most N)'
            cand --max-users 'Most users in the room; above 10, classic clients cannot read the user lists'
            cand --join-timeout 'How long a joining client has to open its update connection'
            cand --unjoined-timeout 'How long a new connection (or one that left) may stay without joining'
            cand --max-unjoined-per-host 'Most connections that have not joined from one IP address'
            cand --max-connections 'Most connections in all, joined or not'
            cand --max-transfers-per-user 'Most downloads one user may have in flight (more: `4062`)'
            cand --cc 'Congestion controller of fast UDP downloads'
            cand --max-datagram 'Largest fast-mode datagram, in bytes. Without it the server starts at 1452 and probes larger sizes (65,000 at once on loopback); with it, exactly this size and no probing, e.g. `--max-datagram 1452` to behave as on a 1500-byte-MTU path through `chatctl impair` on loopback'
            cand --trace 'Write one JSON line per fast-mode sender event (send, ack, loss, rto, cwnd; with the transfer port) to FILE, for plots'
            cand --log-format 'Log line format on stderr (`--json` is `--log-format json`)'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;capture-decode'= {
            cand --port 'Also treat this TCP port as a server port (13337 always is); repeatable'
            cand --extract 'Rebuild every downloaded file into this folder and list on stdout what was written where (one JSON object per file with --json). Files are named after the requested file (`NAME.1`, `NAME.2` for more copies); one whose size does not match its `206`, or in fast mode whose hash (BLAKE3 or XXH3-128, by the transfer''s format) does not match the sender''s, gets a `.incomplete` suffix. Nothing is overwritten. Only fast transfers carry a hash: a TCP or go-back-N file is reported as "size matches", a fast one as "verified"'
            cand --plot 'Draw a time-sequence graph of each transfer (go-back-N: packet number, fast and TCP: byte offset, over time; with a title, axis ticks and a legend) and list on stdout the files written (one JSON object each with --json) and the transfers not plotted, with the reason (an empty file, nothing of it captured). TARGET is a folder (an existing one, or any path ending in `/`): `TARGET/transfer-<id>.svg`; or a file: NAME.svg or NAME.png (PNG by the extension; no extension means SVG) for one transfer, NAME-<id>.svg or NAME-<id>.png for several. Nothing is overwritten: a taken name gets a number, `NAME.1.png`'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --timeline 'Print the timeline too with --extract or --plot (without them it is the default output)'
            cand --summary 'Print a summary instead of the timeline: messages per kind, users seen, and a table of transfers'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;impair'= {
            cand --listen 'Address to listen on for the client, `HOST:PORT` (port 0: the OS picks; the start line on stderr says which)'
            cand --target 'Address to forward the client''s datagrams to, `HOST:PORT` (a name such as `localhost:55001` is resolved once, at the start)'
            cand --loss 'Share of datagrams lost at random, in percent: `1%` or `1` (1%)'
            cand --burst 'After a loss, the chance the next datagram is lost too (bursts), in percent'
            cand --delay 'One-way delay, e.g. `25ms`'
            cand --jitter 'Extra random delay, uniform between 0 and this (it also reorders)'
            cand --reorder 'Share of datagrams held back by half the delay plus 1 ms (reordering), in percent'
            cand --duplicate 'Share of datagrams delivered twice, in percent'
            cand --corrupt 'Share of datagrams with one bit flipped, in percent'
            cand --rate 'Bottleneck rate: bits per second (`200M`, `200Mbit`, `1G`, `64k`) or bytes per second (`25MB/s`) [default: unlimited]'
            cand --queue 'Bottleneck queue (`100000`, `64kB`, `1MiB`); beyond it datagrams are dropped [default: one bandwidth-delay product, at least 64 KiB]'
            cand --seed 'Seed of the random choices: the same seed and traffic give the same fate'
            cand --color 'When to use colour (NO_COLOR in the environment means never, unless `always`)'
            cand --json 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)'
            cand -q 'Print only errors'
            cand --quiet 'Print only errors'
            cand -v 'More detail; repeat for more (`-vv`)'
            cand --verbose 'More detail; repeat for more (`-vv`)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'chatctl;help'= {
            cand completions 'Print a completion script for SHELL to standard output'
            cand join 'Join the room interactively'
            cand say 'Send a message to everyone in the room'
            cand whisper 'Send a private message to one user'
            cand list 'List the other users in the room, or with files (or --files) the files on offer'
            cand fetch 'Download files from the server (UDP by default, as the original client)'
            cand serve 'Run the room server'
            cand capture-decode 'Decode the chat in a pcap or pcapng capture, and rebuild downloaded files'
            cand impair 'Relay UDP between clients and a target through seeded impairments'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'chatctl;help;completions'= {
        }
        &'chatctl;help;join'= {
        }
        &'chatctl;help;say'= {
        }
        &'chatctl;help;whisper'= {
        }
        &'chatctl;help;list'= {
        }
        &'chatctl;help;fetch'= {
        }
        &'chatctl;help;serve'= {
        }
        &'chatctl;help;capture-decode'= {
        }
        &'chatctl;help;impair'= {
        }
        &'chatctl;help;help'= {
        }
    ]
    $completions[$command]
}
