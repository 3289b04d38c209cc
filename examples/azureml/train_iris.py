"""An Azure ML (SDK v1) training script, unchanged: it imports ``azureml.core`` and runs under
mltrain as it does on Azure (mltrain provides a stand-in ``azureml`` package when the job's
environment has no azureml-core).

    python -m mltrain job=azureml_iris job.arguments.kernel=rbf
"""

import argparse
import os

import joblib
import numpy as np
from azureml.core.run import Run
from sklearn import datasets
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split
from sklearn.svm import SVC

run = Run.get_context()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kernel", type=str, default="linear", help="kernel type of the SVC")
    parser.add_argument("--penalty", type=float, default=1.0, help="penalty parameter C of the error term")
    args = parser.parse_args()
    run.log("Kernel type", str(args.kernel))
    run.log("Penalty", float(args.penalty))

    x, y = datasets.load_iris(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, random_state=0)
    model = SVC(kernel=args.kernel, C=args.penalty).fit(x_train, y_train)
    predictions = model.predict(x_test)
    accuracy = model.score(x_test, y_test)
    print(f"Accuracy of SVM classifier on test set: {accuracy:.2f}")
    run.log("Accuracy", np.float64(accuracy))
    print(confusion_matrix(y_test, predictions))

    os.makedirs("outputs", exist_ok=True)
    joblib.dump(model, "outputs/model.joblib")


if __name__ == "__main__":
    main()
