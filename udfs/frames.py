"""Building the pandas frames UDFs return to Spark."""

import pandas as pd


def rows_frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """A frame whose missing values are None, not NaN.

    pandas makes an all-missing column float64 NaN; Arrow then turns it into a ChunkedArray
    for a string field, which PySpark's serializer cannot take. Object columns with None
    convert cleanly to every Spark type.
    """
    frame = pd.DataFrame.from_records(rows, columns=columns).astype(object)
    return frame.where(frame.notna(), None)
