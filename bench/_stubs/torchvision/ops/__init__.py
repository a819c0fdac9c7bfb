"""The three `torchvision.ops` functions onnx2torch refers to; none is implemented."""


def _missing(name: str):
    def function(*args, **kwargs):
        raise NotImplementedError(f"torchvision.ops.{name} is a benchmark stub (bench/_stubs)")

    function.__name__ = name
    return function


box_convert = _missing("box_convert")
nms = _missing("nms")
roi_align = _missing("roi_align")
