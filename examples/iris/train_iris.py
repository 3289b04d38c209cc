"""Train an SVC on the iris data set; the bundled mltrain example.

Runs anywhere: inside mltrain the metrics go to the run, outside they are printed.
"""

import argparse
import os

import joblib
from sklearn import datasets
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

from mltrain import Run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", type=str, default="linear", help="SVC kernel")
    parser.add_argument("--penalty", type=float, default=1.0, help="penalty (C) of the error term")
    args = parser.parse_args()

    run = Run.get_context()
    run.log("kernel", args.kernel)
    run.log("penalty", args.penalty)

    x, y = datasets.load_iris(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    model = SVC(kernel=args.kernel, C=args.penalty, probability=True, random_state=0)
    model.fit(x_train, y_train)
    accuracy = model.score(x_test, y_test)
    print(f"accuracy of the SVC on the test set: {accuracy:.3f}")
    run.log("accuracy", accuracy)

    os.makedirs("outputs", exist_ok=True)
    joblib.dump(model, "outputs/model.joblib")
    print("saved outputs/model.joblib")


if __name__ == "__main__":
    main()
