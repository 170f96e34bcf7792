
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'chatctl' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'chatctl'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'chatctl' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a completion script for SHELL to standard output')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'Join the room interactively')
            [CompletionResult]::new('say', 'say', [CompletionResultType]::ParameterValue, 'Send a message to everyone in the room')
            [CompletionResult]::new('whisper', 'whisper', [CompletionResultType]::ParameterValue, 'Send a private message to one user')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the other users in the room, or with files (or --files) the files on offer')
            [CompletionResult]::new('fetch', 'fetch', [CompletionResultType]::ParameterValue, 'Download files from the server (UDP by default, as the original client)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the room server')
            [CompletionResult]::new('capture-decode', 'capture-decode', [CompletionResultType]::ParameterValue, 'Decode the chat in a pcap or pcapng capture, and rebuild downloaded files')
            [CompletionResult]::new('impair', 'impair', [CompletionResultType]::ParameterValue, 'Relay UDP between clients and a target through seeded impairments')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'chatctl;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;join' {
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Leave after N updates that match the filters')
            [CompletionResult]::new('--for', '--for', [CompletionResultType]::ParameterName, 'Leave after DURATION (e.g. `30s`); exit 9 if nothing matched by then')
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Only messages (private or public) from NAME')
            [CompletionResult]::new('--match', '--match', [CompletionResultType]::ParameterName, 'Only messages whose text matches REGEX (Rust regex syntax)')
            [CompletionResult]::new('--max-line', '--max-line', [CompletionResultType]::ParameterName, 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)')
            [CompletionResult]::new('--reconnect-max', '--reconnect-max', [CompletionResultType]::ParameterName, 'The longest wait between two --reconnect attempts')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--private', '--private', [CompletionResultType]::ParameterName, 'Only private messages')
            [CompletionResult]::new('--reconnect', '--reconnect', [CompletionResultType]::ParameterName, 'When the server goes away, join again with the same name (exponential backoff with jitter; one line per attempt on stderr) and send the lines read meanwhile, in order (at most 10,000 wait; past that the oldest are dropped and counted). A line whose confirmation was lost is sent again. Ctrl-C ends it at once. Without it, a server that goes away ends the command at once (exit 12)')
            [CompletionResult]::new('--detach', '--detach', [CompletionResultType]::ParameterName, 'Run the session in the background (for bots and scripts) and return once it has joined; one-shot commands with the same server and name go through it. `join --stop` ends it')
            [CompletionResult]::new('--stop', '--stop', [CompletionResultType]::ParameterName, 'End the session a `join` (e.g. `join --detach`) runs for this server and name: it leaves the room, then this returns')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;say' {
            [CompletionResult]::new('--max-line', '--max-line', [CompletionResultType]::ParameterName, 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)')
            [CompletionResult]::new('--reconnect-max', '--reconnect-max', [CompletionResultType]::ParameterName, 'The longest wait between two --reconnect attempts')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--reconnect', '--reconnect', [CompletionResultType]::ParameterName, 'When the server goes away, join again with the same name (exponential backoff with jitter; one line per attempt on stderr) and send the lines read meanwhile, in order (at most 10,000 wait; past that the oldest are dropped and counted). A line whose confirmation was lost is sent again. Ctrl-C ends it at once. Without it, a server that goes away ends the command at once (exit 12)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;whisper' {
            [CompletionResult]::new('--max-line', '--max-line', [CompletionResultType]::ParameterName, 'The longest line sent, in characters. A line up to 99 characters is one message; a longer one goes out as several 99-character messages (one receipt line for all); a line over N is not sent: an error names it (from standard input, the other lines still go, and the exit code is 1 at the end)')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;list' {
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--files', '--files', [CompletionResultType]::ParameterName, 'List the server''s files instead of its users (as list files)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;fetch' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'Where to write [default: the current folder]. With one FILE: that file''s name, or an existing folder (or a path ending in `/`) to put it in. With several: a folder, created if missing; each file keeps its name')
            [CompletionResult]::new('--output', '--output', [CompletionResultType]::ParameterName, 'Where to write [default: the current folder]. With one FILE: that file''s name, or an existing folder (or a path ending in `/`) to put it in. With several: a folder, created if missing; each file keeps its name')
            [CompletionResult]::new('--udp-via', '--udp-via', [CompletionResultType]::ParameterName, 'Send UDP downloads through a relay at ADDR:PORT (e.g. `chatctl impair --target SERVER:TRANSFER-PORT`) instead of to the announced port. With `serve --ports LO-HI` the server''s ports are predictable: for one user, LO is the update port and LO+1 the first transfer port')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Write one JSON line per progress tick of a fast download (bytes, RTT, window estimate, holes, late bytes) to FILE, for plots')
            [CompletionResult]::new('--retry', '--retry', [CompletionResultType]::ParameterName, 'Try again up to N times when the server has no transfer port free (4062), cannot be reached, or the connection or a download is lost, waiting 1s, 2s, 4s... (at most 60s) in between, as curl''s --retry. Files already fetched are kept, and an interrupted fast download resumes where it stopped')
            [CompletionResult]::new('--retry-delay', '--retry-delay', [CompletionResultType]::ParameterName, 'Wait this long before each retry instead of the growing backoff (as curl''s --retry-delay), e.g. `500ms`, `2s`')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Server to talk to: HOST:PORT, a HOST (port 13337), or a bare PORT (on this machine, 127.0.0.1)')
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Name to join the room with [default: asked on a TTY, else the login name]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'How long to wait for the server, e.g. `5s`, `1m`, `500ms`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--udp', '--udp', [CompletionResultType]::ParameterName, 'Download over reliable UDP (the default)')
            [CompletionResult]::new('--tcp', '--tcp', [CompletionResultType]::ParameterName, 'Download over TCP')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Overwrite existing files')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Overwrite existing files')
            [CompletionResult]::new('-c', '-c', [CompletionResultType]::ParameterName, 'Resume an interrupted fast UDP download where it stopped: from the partial file it left and the mark beside it (`.NAME.chatctl-resume`, how far the file is good), fetching again at most what was in flight. A file already complete is success ("already complete"), as wget -c. Fast mode only: TCP and classic go-back-N carry no offset, so this is refused with --tcp or --classic, and a server that answers in classic mode sends the file from the start (with a note on stderr)')
            [CompletionResult]::new('--continue', '--continue', [CompletionResultType]::ParameterName, 'Resume an interrupted fast UDP download where it stopped: from the partial file it left and the mark beside it (`.NAME.chatctl-resume`, how far the file is good), fetching again at most what was in flight. A file already complete is success ("already complete"), as wget -c. Fast mode only: TCP and classic go-back-N carry no offset, so this is refused with --tcp or --classic, and a server that answers in classic mode sends the file from the start (with a note on stderr)')
            [CompletionResult]::new('--classic', '--classic', [CompletionResultType]::ParameterName, 'UDP with the classic go-back-N only (no fast-mode hello)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;serve' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on (IPv6 accepted, e.g. `[::]:13337`)')
            [CompletionResult]::new('--files', '--files', [CompletionResultType]::ParameterName, 'Folder whose regular files can be downloaded [default: none]')
            [CompletionResult]::new('--ports', '--ports', [CompletionResultType]::ParameterName, 'Pool of ports for update connections and transfers: LO-HI, or `0` for ports the OS assigns (at most 31 at once; `0-N`: at most N)')
            [CompletionResult]::new('--max-users', '--max-users', [CompletionResultType]::ParameterName, 'Most users in the room; above 10, classic clients cannot read the user lists')
            [CompletionResult]::new('--join-timeout', '--join-timeout', [CompletionResultType]::ParameterName, 'How long a joining client has to open its update connection')
            [CompletionResult]::new('--unjoined-timeout', '--unjoined-timeout', [CompletionResultType]::ParameterName, 'How long a new connection (or one that left) may stay without joining')
            [CompletionResult]::new('--max-unjoined-per-host', '--max-unjoined-per-host', [CompletionResultType]::ParameterName, 'Most connections that have not joined from one IP address')
            [CompletionResult]::new('--max-connections', '--max-connections', [CompletionResultType]::ParameterName, 'Most connections in all, joined or not')
            [CompletionResult]::new('--max-transfers-per-user', '--max-transfers-per-user', [CompletionResultType]::ParameterName, 'Most downloads one user may have in flight (more: `4062`)')
            [CompletionResult]::new('--cc', '--cc', [CompletionResultType]::ParameterName, 'Congestion controller of fast UDP downloads')
            [CompletionResult]::new('--max-datagram', '--max-datagram', [CompletionResultType]::ParameterName, 'Largest fast-mode datagram, in bytes. Without it the server starts at 1452 and probes larger sizes (65,000 at once on loopback); with it, exactly this size and no probing, e.g. `--max-datagram 1452` to behave as on a 1500-byte-MTU path through `chatctl impair` on loopback')
            [CompletionResult]::new('--trace', '--trace', [CompletionResultType]::ParameterName, 'Write one JSON line per fast-mode sender event (send, ack, loss, rto, cwnd; with the transfer port) to FILE, for plots')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log line format on stderr (`--json` is `--log-format json`)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;capture-decode' {
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Also treat this TCP port as a server port (13337 always is); repeatable')
            [CompletionResult]::new('--extract', '--extract', [CompletionResultType]::ParameterName, 'Rebuild every downloaded file into this folder and list on stdout what was written where (one JSON object per file with --json). Files are named after the requested file (`NAME.1`, `NAME.2` for more copies); one whose size does not match its `206`, or in fast mode whose hash (BLAKE3 or XXH3-128, by the transfer''s format) does not match the sender''s, gets a `.incomplete` suffix. Nothing is overwritten. Only fast transfers carry a hash: a TCP or go-back-N file is reported as "size matches", a fast one as "verified"')
            [CompletionResult]::new('--plot', '--plot', [CompletionResultType]::ParameterName, 'Draw a time-sequence graph of each transfer (go-back-N: packet number, fast and TCP: byte offset, over time; with a title, axis ticks and a legend) and list on stdout the files written (one JSON object each with --json) and the transfers not plotted, with the reason (an empty file, nothing of it captured). TARGET is a folder (an existing one, or any path ending in `/`): `TARGET/transfer-<id>.svg`; or a file: NAME.svg or NAME.png (PNG by the extension; no extension means SVG) for one transfer, NAME-<id>.svg or NAME-<id>.png for several. Nothing is overwritten: a taken name gets a number, `NAME.1.png`')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--timeline', '--timeline', [CompletionResultType]::ParameterName, 'Print the timeline too with --extract or --plot (without them it is the default output)')
            [CompletionResult]::new('--summary', '--summary', [CompletionResultType]::ParameterName, 'Print a summary instead of the timeline: messages per kind, users seen, and a table of transfers')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;impair' {
            [CompletionResult]::new('--listen', '--listen', [CompletionResultType]::ParameterName, 'Address to listen on for the client, `HOST:PORT` (port 0: the OS picks; the start line on stderr says which)')
            [CompletionResult]::new('--target', '--target', [CompletionResultType]::ParameterName, 'Address to forward the client''s datagrams to, `HOST:PORT` (a name such as `localhost:55001` is resolved once, at the start)')
            [CompletionResult]::new('--loss', '--loss', [CompletionResultType]::ParameterName, 'Share of datagrams lost at random, in percent: `1%` or `1` (1%)')
            [CompletionResult]::new('--burst', '--burst', [CompletionResultType]::ParameterName, 'After a loss, the chance the next datagram is lost too (bursts), in percent')
            [CompletionResult]::new('--delay', '--delay', [CompletionResultType]::ParameterName, 'One-way delay, e.g. `25ms`')
            [CompletionResult]::new('--jitter', '--jitter', [CompletionResultType]::ParameterName, 'Extra random delay, uniform between 0 and this (it also reorders)')
            [CompletionResult]::new('--reorder', '--reorder', [CompletionResultType]::ParameterName, 'Share of datagrams held back by half the delay plus 1 ms (reordering), in percent')
            [CompletionResult]::new('--duplicate', '--duplicate', [CompletionResultType]::ParameterName, 'Share of datagrams delivered twice, in percent')
            [CompletionResult]::new('--corrupt', '--corrupt', [CompletionResultType]::ParameterName, 'Share of datagrams with one bit flipped, in percent')
            [CompletionResult]::new('--rate', '--rate', [CompletionResultType]::ParameterName, 'Bottleneck rate: bits per second (`200M`, `200Mbit`, `1G`, `64k`) or bytes per second (`25MB/s`) [default: unlimited]')
            [CompletionResult]::new('--queue', '--queue', [CompletionResultType]::ParameterName, 'Bottleneck queue (`100000`, `64kB`, `1MiB`); beyond it datagrams are dropped [default: one bandwidth-delay product, at least 64 KiB]')
            [CompletionResult]::new('--seed', '--seed', [CompletionResultType]::ParameterName, 'Seed of the random choices: the same seed and traffic give the same fate')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to use colour (NO_COLOR in the environment means never, unless `always`)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable output: JSON (one object per line for streams; for `serve`, JSON log lines)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'More detail; repeat for more (`-vv`)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'chatctl;help' {
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a completion script for SHELL to standard output')
            [CompletionResult]::new('join', 'join', [CompletionResultType]::ParameterValue, 'Join the room interactively')
            [CompletionResult]::new('say', 'say', [CompletionResultType]::ParameterValue, 'Send a message to everyone in the room')
            [CompletionResult]::new('whisper', 'whisper', [CompletionResultType]::ParameterValue, 'Send a private message to one user')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the other users in the room, or with files (or --files) the files on offer')
            [CompletionResult]::new('fetch', 'fetch', [CompletionResultType]::ParameterValue, 'Download files from the server (UDP by default, as the original client)')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the room server')
            [CompletionResult]::new('capture-decode', 'capture-decode', [CompletionResultType]::ParameterValue, 'Decode the chat in a pcap or pcapng capture, and rebuild downloaded files')
            [CompletionResult]::new('impair', 'impair', [CompletionResultType]::ParameterValue, 'Relay UDP between clients and a target through seeded impairments')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'chatctl;help;completions' {
            break
        }
        'chatctl;help;join' {
            break
        }
        'chatctl;help;say' {
            break
        }
        'chatctl;help;whisper' {
            break
        }
        'chatctl;help;list' {
            break
        }
        'chatctl;help;fetch' {
            break
        }
        'chatctl;help;serve' {
            break
        }
        'chatctl;help;capture-decode' {
            break
        }
        'chatctl;help;impair' {
            break
        }
        'chatctl;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
