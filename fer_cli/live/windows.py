"""The demo's window: OpenCV's own when this OpenCV was built with GUI support, else a Tk window
(the default opencv-python-headless wheel has none). Keys come back as one-character strings."""

import cv2
import numpy as np

from fer.errors import FerError

ESC = "\x1b"


def opencv_has_gui() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip().upper() != "NONE"
    return False


class OpenCvWindow:
    def __init__(self, title: str):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(self.title, image)

    def poll_key(self, wait_ms: int = 1) -> str | None:
        key = cv2.waitKey(wait_ms) & 0xFF
        if key == 255:
            return ESC if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1 else None
        return chr(key)

    def close(self) -> None:
        cv2.destroyWindow(self.title)


class TkWindow:
    def __init__(self, title: str):
        import tkinter

        from PIL import ImageTk

        self._image_tk = ImageTk
        try:
            self.root = tkinter.Tk()
        except tkinter.TclError as error:
            raise FerError(f"cannot open a window ({error}); use --headless") from None
        self.root.title(title)
        self.label = tkinter.Label(self.root)
        self.label.pack()
        self.keys: list[str] = []
        self.root.bind("<Key>", lambda event: self.keys.append(event.char or ""))
        self.root.bind("<Escape>", lambda event: self.keys.append(ESC))
        self.root.protocol("WM_DELETE_WINDOW", lambda: self.keys.append(ESC))
        self._photo = None

    def show(self, image: np.ndarray) -> None:
        from PIL import Image

        self._photo = self._image_tk.PhotoImage(Image.fromarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB)))
        self.label.configure(image=self._photo)
        self.root.update()

    def poll_key(self, wait_ms: int = 1) -> str | None:
        self.root.after(wait_ms)
        self.root.update()
        return self.keys.pop(0) if self.keys else None

    def close(self) -> None:
        self.root.destroy()


def open_window(title: str) -> OpenCvWindow | TkWindow:
    if opencv_has_gui():
        return OpenCvWindow(title)
    try:
        import tkinter  # noqa: F401
    except ImportError:
        raise FerError(
            "this OpenCV has no window support and Python has no tkinter: install opencv-python "
            "(instead of opencv-python-headless) or python3-tk, or use --headless"
        ) from None
    return TkWindow(title)
