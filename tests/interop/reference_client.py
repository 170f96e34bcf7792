"""Drives the original implementation's client against a server, as its user
would, for tests/interop.rs. Written for this test suite (nothing of the
original is copied here): it imports the original's own GUI module and calls
the methods its buttons call (connect, send to everyone, send to one user,
refresh the files list, download over TCP and over UDP, leave). Its GUI()
constructor opens windows, so a subclass sets the same attributes with
stand-in widgets that record what the client shows; only `center_label` (a
label drawn into the chat box) is replaced, by a recording one.

Usage: python reference_client.py CLIENT_DIR SERVER_IP NAME PEER SPEC RESULT
where SPEC is JSON: {"say": str, "whisper": str, "expect_whisper": str,
"downloads": [[file, "TCP"|"UDP"], ...]}. Writes one JSON object with
what the client saw to the file RESULT and exits 0, or exits 1 with the
reason on stderr. Not to stdout: the original client's listening thread
prints there too, and its last line (the "Woops" it prints when the
server closes the update connection after the leave) can land in the
middle of ours.
"""
import json
import os
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import GUI  # noqa: E402  (the original client)

SERVER_IP, NAME, PEER = sys.argv[2], sys.argv[3], sys.argv[4]
SPEC = json.loads(sys.argv[5])
RESULT = sys.argv[6]
DEADLINE = 60.0


class Widget:
    """A stand-in for any tkinter widget: keeps the text inserted into it."""

    def __init__(self, value=""):
        self.value = value
        self.text = []
        self.items = {}

    def get(self, *args):
        return self.value

    def insert(self, index, text, *tags):
        self.text.append(text)

    def __getitem__(self, key):
        return self.items.get(key, self)

    def __setitem__(self, key, value):
        self.items[key] = value

    def __getattr__(self, name):
        # configure, see, delete, title, destroy, deiconify, update_idletasks, add_radiobutton...
        return lambda *args, **kwargs: None


shown = []  # message boxes, as (kind, title)


def box(kind):
    def show(title, *args, **kwargs):
        shown.append((kind, title))
        return True  # "yes" to "leave the chat?"
    return show


for kind in ("showwarning", "showerror", "showinfo", "askyesnocancel"):
    setattr(GUI.messagebox, kind, box(kind))

threads = []


class Thread(threading.Thread):
    """The client's threads, recorded so downloads can be waited for."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("daemon", True)
        super().__init__(*args, **kwargs)
        threads.append(self)


GUI.Thread = Thread


class Client(GUI.GUI):
    def __init__(self):
        self.send_server_sock = None
        self.USERNAME = ""
        self.server_ip = None
        self.chat_online_users = []
        self.server_files = []
        self.chat_window = Widget()
        self.connect_window = Widget()
        self.chat_textBox = Widget()
        self.files_textBox = Widget()
        self.transfer_progress_bar = Widget()
        self.percentages = Widget()
        self.users_menu = Widget()
        self.users_var = None
        self.labels = []

    def center_label(self, textbox, **kwargs):
        self.labels.append(kwargs.get("text", ""))


def wait_for(what, cond):
    end = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > end:
            sys.exit(f"reference client: timed out waiting for {what}")
        time.sleep(0.05)


c = Client()
c.connect_to_chat(SERVER_IP, "13337", NAME)
if shown or c.send_server_sock is None:
    sys.exit(f"reference client: could not join: {shown}")
users = list(c.chat_online_users)
c.send_message(Widget(SPEC["say"]), to="everyone")
c.send_message(Widget(SPEC["whisper"]), to=PEER)
files_box = Widget()
c.update_server_files(files_box)
files = list(c.server_files)
downloads = []
for name, proto in SPEC["downloads"]:
    files_box.value = name
    before = len(threads)
    c.download_file(files_box, protocol=proto)
    for t in threads[before:]:
        t.join(DEADLINE)
        if t.is_alive():
            sys.exit(f"reference client: {proto} download of {name} did not finish")
    path = os.path.join("Downloaded_Files", NAME, name)
    with open(path, "rb") as f:
        data = f.read()
    downloads.append({"file": name, "transport": proto, "size": len(data), "path": os.path.abspath(path)})
wait_for("the whisper", lambda: any(SPEC["expect_whisper"] in t for t in c.chat_textBox.text))
chat = "".join(c.chat_textBox.text)
c.leave_chat()
with open(RESULT, "w") as f:
    json.dump({
        "users": users,
        "files": files,
        "downloads": downloads,
        "chat": chat,
        "labels": c.labels,
        "files_log": "".join(c.files_textBox.text),
        "shown": shown,
    }, f)
sys.stdout.flush()
os._exit(0)  # the listening thread never ends
